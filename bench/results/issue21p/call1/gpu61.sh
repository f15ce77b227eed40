# issue 21, sixteenth session, call 1: --fp8-classifier 3 (stochastically rounded e5m2 logits' gradient) checked on
# the GPU (bench/kernels_gpu_check.py --checks classifier), d12 default vs cls3 (and with CUDA graphs), cls3's first
# loss check beside the default's flags, then the modern recipe's d12 step with and without FP8 blocks
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L; git status --short >>$L; nvidia-smi -L >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; dir=$2; shift 2; T "$name"; (cd $dir && timeout 60 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 55 --out $OUT/tmp.json "$@" >>$L 2>&1); cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T check; PYTHONPATH=$PWD/src timeout 100 python3 bench/kernels_gpu_check.py --checks classifier --no-compile --out $OUT/check.json >>$L 2>&1
TP d12_def $PWD -e d12
TP d12_cls3 $PWD -e d12 -- --fp8-classifier 3
T loss_check; timeout 300 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline --timeout 100 --out $OUT/loss.json -- --fp8 -1 --fp8-gelu-cast -1 --fp8-classifier 3 >>$L 2>&1
TP d12_cls3_graphs $PWD -e d12 -- --fp8-classifier 3 --compile-mode reduce-overhead
TP d12_modern $PWD -e d12 -- --recipe modern
TP d12_modern_fp8 $PWD -e d12 -- --recipe modern --fp8 1
T done
