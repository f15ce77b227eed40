# issue 21, fourteenth session, call 1: the epilogue bias and the cast pass's bias-gradient sums checked on the GPU
# (bench/kernels_gpu_check.py), then d12 A/B: this tree against 8a45d75 (before the two; made with
#   rm -rf .carry/old && mkdir -p .carry/old && git archive 8a45d75 src bench | tar -x -C .carry/old),
# --fp8-classifier 1 on this tree, d48; last the second sitting of --fp8-classifier 1's loss check on the default
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; dir=$2; shift 2; T "$name"; (cd $dir && timeout 60 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 55 --out $OUT/tmp.json "$@" >>$L 2>&1); cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T check; PYTHONPATH=$PWD/src timeout 120 python3 bench/kernels_gpu_check.py --checks fp8_linear,fp8_cast --no-compile --out $OUT/check.json >>$L 2>&1
TP d12_new $PWD -e d12
TP d12_old $PWD/.carry/old -e d12
TP d12_new_cls1 $PWD -e d12 -- --fp8-classifier 1
TP d12_new_2 $PWD -e d12
TP d12_new_cls1_2 $PWD -e d12 -- --fp8-classifier 1
TP d48_new $PWD -e d48
TP d48_new_cls1 $PWD -e d48 -- --fp8-classifier 1
T loss_check; timeout 300 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline --timeout 100 --out $OUT/loss.json -- --fp8 -1 --fp8-gelu-cast -1 --fp8-classifier 1 >>$L 2>&1
T done
