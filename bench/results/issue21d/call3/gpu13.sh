# session 2026-12-02d, call 3: d48 at -r 1 (llm.c's default -r), FP8 against bf16: speed and peak memory (does the
# planner's bf16 estimate still bound FP8's?); the 200-step loss check of --fp8 1 against bf16 in one sitting
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I=".carry/corpus/corpus_train_*.bin"; J=".carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; t=$2; shift 2; T "$name"; timeout $t python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 100 --keep-logs $OUT/logs_$name --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
TP r1_fp8 80 -e d48 -r 1 -- --fp8 1
TP r1_bf16 70 -e d48 -r 1 -- --fp8 0
T loss_check; timeout 420 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline --timeout 100 --out $OUT/loss_fp8.json -- --fp8 1 >>$L 2>&1
T done
