# issue 21, eighteenth session, call 8: --fp8-classifier 4's target terms summed into dW by an embedding's backward
# once a micro-step (instead of index_put_ chunk by chunk): d12's step by default, beside --fp8-classifier 2, and
# with CUDA graphs
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L; git status --short >>$L; nvidia-smi -L >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; dir=$2; shift 2; T "$name"; (cd $dir && timeout 75 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 70 --out $OUT/tmp.json "$@" >>$L 2>&1); cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
TP d12_default $PWD -e d12
TP d12_cls2 $PWD -e d12 -- --fp8-classifier 2
TP d12_graphs $PWD -e d12 -- --compile-mode reduce-overhead
TP d12_default2 $PWD -e d12
T done
