# session 2026-12-03 (ninth), call 3: the defaults as committed (delayed scaling where FP8 runs, the weights drawn
# in the background): d12 and d48 throughput beside --fp8-classifier 2; the second loss-check sitting of
# --fp8-classifier 2; d48's start-up, cold and warm
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 120 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 100 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
TP d12_default -e d12
TP d12_fc2 -e d12 -- --fp8-classifier 2
T loss_fc2; timeout 320 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline --timeout 100 --out $OUT/loss_fc2.json -- --fp8-classifier 2 >>$L 2>&1
TP d48_default -e d48
TP d48_fc2 -e d48 -- --fp8-classifier 2
T su_d48; timeout 100 python3 -m bench startup -i "$I" -j "$J" -e d48 --warm 2 --out $OUT/su_d48.json >>$L 2>&1
T done
