# issue 21, eighteenth session, call 1: what bounds GELU's cast passes (tanh.approx, launch sweep), the d12 default
# beside --fp8-classifier 4 (with CUDA graphs), and --fp8-classifier 4's loss check
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L; git status --short >>$L; nvidia-smi -L >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; dir=$2; shift 2; T "$name"; (cd $dir && timeout 60 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 55 --out $OUT/tmp.json "$@" >>$L 2>&1); cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T gelu_sweep; timeout 100 env PYTHONPATH=$PWD/src OUT=$OUT python3 .carry/gelu_sweep.py >>$L 2>&1
T loss_check_cls4; timeout 330 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline --timeout 150 --out $OUT/loss_cls4.json -- --fp8-classifier 4 >>$L 2>&1
TP d12_default $PWD -e d12
TP d12_cls4 $PWD -e d12 -- --fp8-classifier 4
TP d12_cls4_graphs $PWD -e d12 -- --fp8-classifier 4 --compile-mode reduce-overhead
T done
