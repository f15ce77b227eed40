# session 2026-12-02b, call 4: the fixed cast kernel (fp32 values transposed, then cast): bits from fp32 and bf16
# sources, fp8_linear eager; throughput in one sitting, bf16 and --fp8 1 with the kernel
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I=".carry/corpus/corpus_train_*.bin"; J=".carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 120 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 60 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T kcheck; timeout 60 python3 bench/kernels_gpu_check.py --checks fp8_cast,fp8_linear --no-compile --reps 5 --out $OUT/kcheck.json > $OUT/kcheck.txt 2>&1; grep -E "bits|fp8 vs ref|failures|FAIL" $OUT/kcheck.txt >>$L
TP fp8_1_kernel -e d48 d12 -- --fp8 1
TP bf16 -e d48 d12
T done
