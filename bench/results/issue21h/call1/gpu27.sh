# session 2026-12-03 (eighth), call 1: --fp8-classifier (the output layer's three matmuls in FP8): the kernels
# check at d12's classifier shape (errors, ms, the gradient kernel's bits), then throughput in one sitting
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 170 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 100 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T kernels; timeout 120 python3 bench/kernels_gpu_check.py --checks classifier --shapes d12 --dtypes bf16 --chunk-sweep "" --no-compile --out $OUT/kernels_classifier.json >>$L 2>&1
TP base -e d12 d48
TP fc -e d12 d48 -- --fp8-classifier 1
TP blocks_graphs -e d12 -- --fp8 1 --fp8-scaling delayed --compile-mode reduce-overhead
TP blocks_graphs_fc -e d12 -- --fp8 1 --fp8-scaling delayed --compile-mode reduce-overhead --fp8-classifier 1
TP blocks_fc -e d12 -- --fp8 1 --fp8-classifier 1
T done
