# session 2026-12-03 (eighth), call 5: d48's warm start with the weights drawn in the background beside the
# compiler's imports (this tree) against HEAD f34994b (.carry/treeB), alternating on one machine, one compile cache
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L
export TORCHINDUCTOR_CACHE_DIR=/tmp/ic TRITON_CACHE_DIR=/tmp/tc
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TR() { name=$1; dir=$2; T "$name"; (cd $dir && PYTHONPATH=$PWD/src timeout 60 python3 -m gpt2train train -i "$I" -j "$J" -o /tmp/run_$name -e d48 -b 16 -t 1024 -d 65536 -x 1 -v 0 -m 1 -s 0 -r 0 -w 1 -l 6e-4 --no-tensorboard 2>&1 | grep -E "time to first|error|Error") >>$L 2>&1; }
TR cold_new .
TR new1 .; TR old1 .carry/treeB; TR new2 .; TR old2 .carry/treeB; TR new3 .; TR old3 .carry/treeB; TR new4 .; TR old4 .carry/treeB
T done
