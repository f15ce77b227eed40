# issue 21, tenth session, call 5 (2026-12-03): the persistent cast kernel (64x128 tiles looping, one amax atomic per
# program): its bits on the GPU, then d48's default with it and with 35ae78b's kernel (sitecustomize), interleaved
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 80 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 70 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\", \"old\": \"$G2T_OLD_CAST\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T check; timeout 70 python3 bench/kernels_gpu_check.py --checks fp8_cast --no-compile --out $OUT/check.json >>$L 2>&1
TP d48_new -e d48
export PYTHONPATH=$PWD/.carry/site G2T_OLD_CAST=1; TP d48_old -e d48; unset PYTHONPATH G2T_OLD_CAST
TP d48_new_again -e d48
T done
