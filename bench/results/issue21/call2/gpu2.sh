# issue 21, call 2: Inductor tiling / tuning for the FP8 step's fusions; --fp8-bf16 choices; warm start-up profile
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD/.carry/exp
I=".carry/corpus/corpus_train_*.bin"; J=".carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 200 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 180 --out $OUT/tmp_$name.json "$@" >>$L 2>&1; cat $OUT/tmp_$name.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp_$name.json; }
ND="triton.prefer_nd_tiling=1,triton.tile_reductions=1"
TP fp8_base -e d48 -- --fp8 2
EXP_INDUCTOR=$ND TP fp8_nd -e d48 -- --fp8 2
TORCHINDUCTOR_COORDINATE_DESCENT_TUNING=1 TP fp8_cdt -e d48 -- --fp8 2
EXP_INDUCTOR=$ND TORCHINDUCTOR_COORDINATE_DESCENT_TUNING=1 TP fp8_nd_cdt -e d48 -- --fp8 2
TP fp8_keep_cproj -e d48 -- --fp8 2 --fp8-bf16 mlp.c_proj
for m in "d12 -b 64 -d 524288" "d48 -b 16 -d 65536"; do
  set -- $m; T cprofile $1
  PYTHONPATH=$PWD/src timeout 60 python3 -m gpt2train train -i $I -j $J -e $m -t 1024 -r 0 -x 1 -v 0 -s 0 --no-tensorboard 2>&1 | grep "first step" >>$L
  PYTHONPATH=$PWD/src timeout 100 python3 -m cProfile -o /tmp/w_$1.prof -m gpt2train train -i $I -j $J -e $m -t 1024 -r 0 -x 1 -v 0 -s 0 --no-tensorboard >>$L 2>&1
  python3 -c "import pstats; s=pstats.Stats('/tmp/w_$1.prof'); s.sort_stats('cumulative').print_stats(90); s.sort_stats('tottime').print_stats(30)" > $OUT/warm_$1.txt 2>&1
done
EXP_INDUCTOR=$ND TORCHINDUCTOR_COORDINATE_DESCENT_TUNING=1 TP bf16_nd_cdt -e d48
EXP_INDUCTOR=$ND TORCHINDUCTOR_COORDINATE_DESCENT_TUNING=1 TP d12_fp8_nd_cdt -e d12 -- --fp8 2
T done
