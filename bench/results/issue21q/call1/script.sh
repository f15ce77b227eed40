# issue 21, seventeenth session, call 1: ReLU² inside the FP8 casts on the GPU (check + A/B on the modern recipe),
# the CUDA-graph gradient fix on the modern recipe, the classic d12 default with and without CUDA graphs
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L; git status --short >>$L; nvidia-smi -L >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; dir=$2; shift 2; T "$name"; (cd $dir && timeout 60 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 55 --out $OUT/tmp.json "$@" >>$L 2>&1); cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T kernels_fp8_gelu; timeout 120 env PYTHONPATH=$PWD/src python3 bench/kernels_gpu_check.py --checks fp8_gelu --out $OUT/kcheck.json >>$L 2>&1
TP d12_modern_default $PWD -e d12 -- --recipe modern
TP d12_modern_relu2cast $PWD -e d12 -- --recipe modern --fp8-gelu-cast 1
TP d12_modern_graphs $PWD -e d12 -- --recipe modern --compile-mode reduce-overhead
TP d12_modern_relu2cast_b $PWD -e d12 -- --recipe modern --fp8-gelu-cast 1
TP d12_modern_default_b $PWD -e d12 -- --recipe modern
TP d12_classic_default $PWD -e d12
TP d12_classic_graphs $PWD -e d12 -- --compile-mode reduce-overhead
T done
