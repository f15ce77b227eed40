# issue 21, fifteenth session, call 4: does CUDA graphs' start-up fit d12's warm goal (10 s) on this tree? start-up
# cold and warm with --compile-mode reduce-overhead, then d12 throughput with and without it
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; dir=$2; shift 2; T "$name"; (cd $dir && timeout 60 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 55 --out $OUT/tmp.json "$@" >>$L 2>&1); cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T startup_graphs; timeout 150 python3 -m bench startup -i "$I" -j "$J" -e d12 --warm 2 --out $OUT/startup.json -- --compile-mode reduce-overhead >>$L 2>&1
TP d12_graphs $PWD -e d12 -- --compile-mode reduce-overhead
TP d12_def $PWD -e d12
T done
