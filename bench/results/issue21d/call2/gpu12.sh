# session 2026-12-02d, call 2: --fp8 -1 (the new default) at d48 against --fp8 0 in the trainer; d36 (1280 channels),
# FP8 against bf16 (where the auto rule's width should start); a profile of d48's default step; d48 B=40 under the
# 80,300 MiB cap with --recompute-whole -1 and FP8 auto; delayed scaling with CUDA graphs
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I=".carry/corpus/corpus_train_*.bin"; J=".carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; t=$2; shift 2; T "$name"; timeout $t python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 100 --keep-logs $OUT/logs_$name --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
TP default 80 -e d48
TP bf16 80 -e d48 -- --fp8 0
TP d36_fp8 70 -e d36 -b 16 -d 65536 -- --fp8 1
TP d36_bf16 70 -e d36 -b 16 -d 65536 -- --fp8 0
T prof_default; timeout 100 python3 -m bench profile --out /tmp/prof --steps 2 -- -i "$I" -j "$J" -e d48 -b 16 -t 1024 -d 65536 -r 0 >>$L 2>&1; cp /tmp/prof/profile.txt $OUT/prof_d48_default.txt
T capped; timeout 110 python3 -m bench capped --mib 80300 -- train -i "$I" -j "$J" -e d48 -b 40 -t 1024 -d 40960 -r 2 --recompute-whole -1 -x 4 -v 0 -s 0 --no-tensorboard >>$L 2>&1
TP delayed_graphs 80 -e d48 -- --fp8 1 --fp8-scaling delayed --compile-mode reduce-overhead
T done
