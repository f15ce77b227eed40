# issue 21, twelfth session, call 4 (2026-12-03): where a fresh machine's first start goes (bench startup --sample,
# d12 first as in call 3, whose d12 cold start took 36.6 s); d12 default against CUDA graphs once more
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 80 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 70 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T startup; timeout 200 python3 -m bench startup -i "$I" -j "$J" -e d12 d48 --warm 1 --sample --timeout 80 --out $OUT/startup.json >>$L 2>&1
TP d12_default -e d12
TP d12_graphs -e d12 -- --compile-mode reduce-overhead
T done
