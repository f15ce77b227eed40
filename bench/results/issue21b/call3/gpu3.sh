# session 2026-12-02b, call 3: the one-pass FP8 cast kernel (kernels/fp8_cast.py): bits and speed against its
# reference; throughput in one sitting: bf16, --fp8 1 with the kernel, --fp8 1 with Inductor's casts (A/B),
# --fp8 2 with the kernel; a d48 --fp8 1 profile
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD/.carry/exp
I=".carry/corpus/corpus_train_*.bin"; J=".carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L; git log --oneline -1 >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 170 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 80 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T kcheck; timeout 150 python3 bench/kernels_gpu_check.py --checks fp8_cast,fp8_linear --compile-fp8-shape skip --reps 10 --out $OUT/kcheck.json > $OUT/kcheck.txt 2>&1; tail -45 $OUT/kcheck.txt >>$L
TP bf16 -e d12 d48
TP fp8_1_kernel -e d12 d48 -- --fp8 1
EXP_CAST=inductor TP fp8_1_inductor -e d12 d48 -- --fp8 1
TP fp8_2_kernel -e d48 -- --fp8 2
T prof_fp8_1; timeout 110 python3 -m bench profile --out /tmp/prof --steps 2 -- -i "$I" -j "$J" -e d48 -b 16 -t 1024 -d 65536 -r 0 --fp8 1 >>$L 2>&1; cp /tmp/prof/profile.txt $OUT/prof_d48_fp8_1.txt
T done
