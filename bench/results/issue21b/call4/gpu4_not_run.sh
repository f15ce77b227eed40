# session 2026-12-02b, call 4: why --fp8 with kernels/fp8_cast.py's op gave NaN gradients when compiled on the GPU
# (each launch compared with the reference), two other ways to launch the same kernel, and their throughput
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD/.carry/exp
I=".carry/corpus/corpus_train_*.bin"; J=".carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
Q() { m=$1; T "quick $m"; EXP_CAST=$m PYTHONPATH=$PWD/.carry/exp:$PWD/src timeout 60 python3 -m gpt2train train -i "$I" -j "$J" -e d12 -b 16 -t 1024 -d 16384 -x 3 -v 0 -s 0 --no-tensorboard --fp8 1 > /tmp/q_$m.txt 2>&1; grep -E "cast#|skipping|EXP_CAST|error|Error|step +[0-9]|Traceback" /tmp/q_$m.txt | head -60 >>$L; tail -3 /tmp/q_$m.txt >>$L; }
TP() { name=$1; shift; T "$name"; timeout 150 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 70 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
Q debug
Q direct
Q triton_op
TP bf16 -e d48 d12
EXP_CAST=direct TP fp8_1_direct -e d48 d12 -- --fp8 1
EXP_CAST=triton_op TP fp8_1_triton_op -e d48 -- --fp8 1
T done
