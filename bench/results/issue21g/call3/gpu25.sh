# session 2026-12-03 (seventh), call 3: the tree to land (AOTAutograd's cache allowed for graphs holding custom
# autograd.Functions) against HEAD 96b36fe (.carry/treeA), warm starts by bench startup --warm N; then whether a
# start from the cache (AOTAutograd's hit) trains as the start that compiled: d48's default path (FP8), 4 steps each
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L; git diff --stat HEAD >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
SU() { name=$1; dir=$2; t=$3; shift 3; T "startup $name"; (cd $dir && timeout $t python3 -m bench startup -i "$I" -j "$J" --out $OUT/su_$name.json "$@") >>$L 2>&1; }
SU prime .carry/treeA 60 -e d12 --warm 0
SU new_d48 . 95 -e d48 --warm 4
SU A_d48 .carry/treeA 95 -e d48 --warm 4
SU new_d12 . 65 -e d12 --warm 3
SU A_d12 .carry/treeA 65 -e d12 --warm 3
# the same 4 steps from a cold compile cache, then from the cache it filled; this tree, then HEAD
TR() { name=$1; dir=$2; T "train $name"; (cd $dir && PYTHONPATH=$PWD/src timeout 60 python3 -m gpt2train train -i "$I" -j "$J" -o /tmp/run_$name -e d48 -b 4 -t 1024 -d 4096 -x 4 -v 0 -s 0 -l 6e-4 --no-tensorboard 2>&1 | grep -E "^step|time to first|fp8|val loss") >>$L 2>&1; }
export TORCHINDUCTOR_CACHE_DIR=/tmp/ic_new TRITON_CACHE_DIR=/tmp/tc_new
TR new_cold .; TR new_warm .
export TORCHINDUCTOR_CACHE_DIR=/tmp/ic_A TRITON_CACHE_DIR=/tmp/tc_A
TR A_cold .carry/treeA; TR A_warm .carry/treeA
T done
