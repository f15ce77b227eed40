# session 2026-12-03 (ninth), call 1: throughput of --fp8-classifier 2 (d12) and delayed scaling / CUDA graphs (d48)
# beside the defaults; then d48's warm start with the weights drawn in the background (this tree) against a33ba78
# (.carry/treeB), alternating on one machine, one compile cache
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 120 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 100 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
TP d12_default -e d12
TP d12_fc2 -e d12 -- --fp8-classifier 2
TP d12_fc1 -e d12 -- --fp8-classifier 1
TP d48_default -e d48
TP d48_delayed -e d48 -- --fp8-scaling delayed
TP d48_delayed_ro -e d48 -- --fp8-scaling delayed --compile-mode reduce-overhead
export TORCHINDUCTOR_CACHE_DIR=/tmp/ic TRITON_CACHE_DIR=/tmp/tc
TR() { name=$1; dir=$2; T "$name"; (cd $dir && PYTHONPATH=$PWD/src timeout 60 python3 -m gpt2train train -i "$I" -j "$J" -o /tmp/run_$name -e d48 -b 16 -t 1024 -d 65536 -x 1 -v 0 -m 1 -s 0 -r 0 -w 1 -l 6e-4 --no-tensorboard 2>&1 | grep -E "time to first|error|Error") >>$L 2>&1; }
TR first_new .
TR new1 .; TR old1 .carry/treeB; TR new2 .; TR old2 .carry/treeB; TR new3 .; TR old3 .carry/treeB; TR new4 .; TR old4 .carry/treeB
T done
