# session 2026-12-03 (eighth), call 4: the default paths again (call 3's d48 ran 1111 ms, 4% slower than call 1's):
# d12 and d48 twice in one sitting; then d48's start-up, cold and two warm (prime first: the first process writes
# the bytecode)
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 170 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 100 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
TP default1 -e d12 d48
TP default2 -e d48 d12
T prime; timeout 60 python3 -m bench startup -i "$I" -j "$J" -e d12 --warm 0 --out $OUT/su_prime.json >>$L 2>&1
T su_d48; timeout 120 python3 -m bench startup -i "$I" -j "$J" -e d48 --warm 3 --out $OUT/su_d48.json >>$L 2>&1
T done
