# session 2026-12-02c, call 4 (short: the session's last device time): d48 with every operand through the cast kernel
# under dynamic scaling (held the loss at -0.0034), beside bf16; CUDA graphs (reduce-overhead) with it, against the
# host's launch overhead
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I=".carry/corpus/corpus_train_*.bin"; J=".carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 80 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 75 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
TP dynamic_kernel -e d48 -- --fp8 1 --fp8-cast-kernel 1
TP bf16 -e d48
TP dynamic_kernel_graphs -e d48 -- --fp8 1 --fp8-cast-kernel 1 --compile-mode reduce-overhead
T done
