# session 2026-12-03 (ninth), call 4: the defaults as committed at 7074238 (d12: the FP8 logits; d48: delayed
# scaling): d12 once, d48 twice, keeping the trainer's console output; d48's start-up cold and warm
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 100 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 90 --keep-logs $OUT/logs_$name --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
TP d12_default -e d12
TP d48_default1 -e d48
TP d48_default2 -e d48
T su_d48; timeout 80 python3 -m bench startup -i "$I" -j "$J" -e d48 --warm 2 --out $OUT/su_d48.json >>$L 2>&1
T done
