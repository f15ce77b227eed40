# session 2026-12-03, call 4: why d48 B=40 -r 2 --fp8 1 with 20 blocks recomputed whole ran out of memory under the
# 80,300 MiB cap (call 2): its peak uncapped, at 0, 20 and 48 whole blocks, to fit the planner's FP8 coefficients
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I=".carry/corpus/corpus_train_*.bin"; J=".carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; t=$2; shift 2; T "$name"; timeout $t python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 4 --timeout 100 --keep-logs $OUT/logs_$name --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
TP w20 80 -e d48 -- -b 40 -d 40960 -r 2 --recompute-whole 20 --fp8 1
TP w0 60 -e d48 -- -b 40 -d 40960 -r 2 --recompute-whole 0 --fp8 1
TP w48 60 -e d48 -- -b 40 -d 40960 -r 2 --recompute-whole 48 --fp8 1
T done
