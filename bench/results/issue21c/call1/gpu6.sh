# session 2026-12-02c, call 1: the cast kernel with the transposed copy stored by address (bits from fp32 and bf16,
# both ways); throughput in one sitting: bf16, --fp8 1 (Inductor casts), --fp8-cast-kernel 1 (bf16 sources),
# --fp8-cast-kernel 1 with every source (EXP_SOURCES=all), and that behind triton_op
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD/.carry/exp
I=".carry/corpus/corpus_train_*.bin"; J=".carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L; git log --oneline -1 >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 150 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 70 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T kcheck; timeout 100 python3 bench/kernels_gpu_check.py --checks fp8_cast --no-compile --reps 5 --out $OUT/kcheck.json > $OUT/kcheck.txt 2>&1; grep -E "bits|failures|FAIL|Error" $OUT/kcheck.txt >>$L
EXP_SOURCES=all TP fp8_1_kernel_all -e d48 d12 -- --fp8 1 --fp8-cast-kernel 1
TP bf16 -e d48 d12
TP fp8_1_kernel_bf16 -e d48 d12 -- --fp8 1 --fp8-cast-kernel 1
TP fp8_1_inductor -e d48 -- --fp8 1
EXP_SOURCES=all EXP_CAST=triton_op TP fp8_1_tritonop_all -e d48 -- --fp8 1 --fp8-cast-kernel 1
EXP_SOURCES=all TP fp8_2_kernel_all -e d48 -- --fp8 2 --fp8-cast-kernel 1
T done
