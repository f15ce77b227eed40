# session 2026-12-02c, call 2: --fp8-cast-kernel 1 with fp32 operands rounded to bf16 (every operand through the
# kernel) and --fp8-scaling delayed (the kernel records the amax): CPU tests on this torch, kernel bits and amax
# record, throughput in one sitting (delayed, bf16, dynamic), the loss check of delayed twice against bf16 twice
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I=".carry/corpus/corpus_train_*.bin"; J=".carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L; git log --oneline -1 >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 150 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 70 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T pytest; CUDA_VISIBLE_DEVICES= timeout 60 python3 -m pytest -q -x -p no:cacheprovider tests/test_kernels_fp8_linear.py -k "delayed" 2>&1 | tail -3 >>$L
T kcheck; timeout 60 python3 bench/kernels_gpu_check.py --checks fp8_cast --no-compile --reps 2 --out $OUT/kcheck.json > $OUT/kcheck.txt 2>&1; grep -E "bits|amax|failures|FAIL|Error" $OUT/kcheck.txt | grep -v '^{' >>$L
TP delayed_kernel -e d48 d12 -- --fp8 1 --fp8-cast-kernel 1 --fp8-scaling delayed
TP bf16 -e d48 d12
T loss; timeout 330 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline --timeout 95 --out $OUT/loss_delayed.json -- --fp8 1 --fp8-cast-kernel 1 --fp8-scaling delayed >>$L 2>&1
TP dynamic_kernel -e d48 d12 -- --fp8 1 --fp8-cast-kernel 1
T done
