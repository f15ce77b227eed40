# session 2026-12-03 (sixth), call 2, a fresh machine: start-up cold and warm (bench startup), this tree (compile
# workers started and GPU libraries read ahead at setup) against HEAD ddbdb45 (.carry/old), alternating, without
# the sampler; one sampled start each of d48 and d12; the modern recipe's time to loss
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L; git diff --stat HEAD >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
SU() { name=$1; dir=$2; t=$3; shift 3; T "startup $name"; (cd $dir && timeout $t python3 -m bench startup -i "$I" -j "$J" --out $OUT/su_$name.json "$@") >>$L 2>&1; }
# the machine's first process: bytecode written as it starts
SU first . 110 -e d48 --sample
SU old1 .carry/old 80 -e d48
SU new1 . 80 -e d48
SU old2 .carry/old 80 -e d48
SU new2 . 80 -e d48
SU new_d12 . 70 -e d12
T ttl; timeout 120 python3 -m bench time-to-loss --train "$I" --val "$J" -o $OUT/ttl.json --variants modern --budget-s 100 >>$L 2>&1
SU new_d48_sampled . 80 -e d48 --sample
T done
