# session 2026-12-03 (seventh), call 1: warm start, several warm starts per cold one (bench startup --warm N).
# A = HEAD 96b36fe (.carry/treeA); B = this tree (the compiler imported and its source hashes taken in a thread
# during setup, the compile workers started from it); D = B with 4 compile workers instead of 16
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L; git diff --stat HEAD >>$L; git status --short >>$L
python3 -c "import torch, triton; print(torch.__version__, triton.__version__, torch.cuda.get_device_name())" >>$L 2>&1
T() { echo "=== $* ($(date -u +%T))" >>$L; }
SU() { name=$1; dir=$2; t=$3; shift 3; T "startup $name"; (cd $dir && timeout $t python3 -m bench startup -i "$I" -j "$J" --out $OUT/su_$name.json "$@") >>$L 2>&1; }
# the machine's first process writes torch's bytecode as it starts: one cold d12 start first, not counted
SU prime .carry/treeA 70 -e d12 --warm 0
SU A_d48 .carry/treeA 100 -e d48 --warm 4
SU B_d48 . 100 -e d48 --warm 4
TORCHINDUCTOR_COMPILE_THREADS=4 SU D_d48 . 100 -e d48 --warm 4
SU A_d12 .carry/treeA 75 -e d12 --warm 3
SU B_d12 . 75 -e d12 --warm 3
SU B_d48_sampled . 60 -e d48 --sample --warm 1
T done
