# session 2026-12-03 (seventh), call 2: warm start, several warm starts per cold one (bench startup --warm N).
# A = HEAD 96b36fe (.carry/treeA); C = A with AOTAutograd's cache allowed for custom autograd.Function graphs
# (.carry/treeC); E = this tree (C + the compiler imported in a thread during setup)
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L; git diff --stat HEAD >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
SU() { name=$1; dir=$2; t=$3; shift 3; T "startup $name"; (cd $dir && timeout $t python3 -m bench startup -i "$I" -j "$J" --out $OUT/su_$name.json "$@") >>$L 2>&1; }
SU prime .carry/treeA 60 -e d12 --warm 0
SU A_d48 .carry/treeA 95 -e d48 --warm 4
SU E_d48 . 95 -e d48 --warm 4
SU C_d48 .carry/treeC 80 -e d48 --warm 3
SU A_d12 .carry/treeA 65 -e d12 --warm 3
SU E_d12 . 65 -e d12 --warm 3
SU E_d48_sampled . 50 -e d48 --sample --warm 1
T done
