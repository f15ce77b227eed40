# session 2026-12-03 (sixth), call 1, a fresh machine: start-up cold and warm (bench startup: new compile caches,
# page cache dropped), this tree (compile workers started at setup) against HEAD ddbdb45 (.carry/old); d12 levers
# (attention backend, delayed FP8 with CUDA graphs); the modern recipe's d12 step and time to loss
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L; git diff --stat >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
SU() { name=$1; dir=$2; t=$3; shift 3; T "startup $name"; (cd $dir && timeout $t python3 -m bench startup -i "$I" -j "$J" --sample --keep-logs $OUT/logs_su_$name --out $OUT/su_$name.json "$@") >>$L 2>&1; }
TP() { name=$1; t=$2; shift 2; T "$name"; timeout $t python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 100 --keep-logs $OUT/logs_$name --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
# the machine's first process: bytecode written as it starts (the earlier sessions' "cold")
SU first . 120 -e d48
SU old1 .carry/old 100 -e d48
SU new1 . 100 -e d48
SU new_d12 . 90 -e d12
TP d12_default 60 -e d12
TP d12_flash 60 -e d12 -- --attention flash
TP d12_delayed_graphs 70 -e d12 -- --fp8 1 --fp8-scaling delayed --compile-mode reduce-overhead
TP d12_modern 60 -e d12 -- --recipe modern
SU old2 .carry/old 90 -e d48
SU new2 . 90 -e d48
T done
