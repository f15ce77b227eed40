# issue 21, tenth session, call 4 (2026-12-03): the cast kernel's tiles, a persistent and a TMA variant (bits and
# time, amax on); the defaults (d48 now with the FP8 logits) beside the best tile; the capped d48 B=40; d48 profile
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 100 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 90 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\", \"tile\": \"$G2T_CAST_TILE\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T sweep; PYTHONPATH=$PWD/src timeout 150 python3 .carry/exp/cast_sweep.py $OUT/sweep.json >>$L 2>&1
TP d12_default -e d12
TP d48_default -e d48
TILE=$(python3 .carry/exp/pick_tile.py $OUT/sweep.json 2>>$L); T "best tile $TILE"
if [ -n "$TILE" ] && [ "$TILE" != "64,64,4" ]; then
  export PYTHONPATH=$PWD/.carry/site G2T_CAST_TILE=$TILE
  TP d12_default_tile -e d12
  TP d48_default_tile -e d48
  unset G2T_CAST_TILE PYTHONPATH
fi
TP d48_default_again -e d48
T capped; timeout 130 python3 -m bench capped --mib 80300 -- train -i "$I" -j "$J" -e d48 -b 40 -t 1024 -d 40960 -r 2 --recompute-whole -1 -x 4 -v 0 -s 0 >>$L 2>&1
T prof_d48; timeout 100 python3 -m bench profile --out $OUT/prof_d48 --steps 2 -- -i "$I" -j "$J" -e d48 -b 16 -t 1024 -d 65536 -r 0 >>$L 2>&1
T done
