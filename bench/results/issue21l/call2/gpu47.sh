# issue 21, twelfth session, call 2 (2026-12-03): the q/k/v gather pass after ad6c529 (a tile's columns from one head,
# loaded row-major): its check on the GPU, then d12 and d48 default against --fp8-qkv-cast 1, interleaved; d12 with
# CUDA graphs (--compile-mode reduce-overhead)
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 80 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 70 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T check; timeout 60 python3 bench/kernels_gpu_check.py --checks fp8_qkv --out $OUT/check.json >>$L 2>&1
TP d12_default -e d12
TP d12_qkv -e d12 -- --fp8-qkv-cast 1
TP d48_default -e d48
TP d48_qkv -e d48 -- --fp8-qkv-cast 1
TP d12_default_2 -e d12
TP d12_qkv_2 -e d12 -- --fp8-qkv-cast 1
TP d12_graphs -e d12 -- --compile-mode reduce-overhead
TP d12_qkv_graphs -e d12 -- --fp8-qkv-cast 1 --compile-mode reduce-overhead
TP d48_default_2 -e d48
TP d48_qkv_2 -e d48 -- --fp8-qkv-cast 1
T done
