# issue 21, eleventh session, call 2 (2026-12-03): GELU inside the FP8 casts (--fp8-gelu-cast, the default now where
# our FP8 linears run with delayed scaling and the cast kernel; d12's default now FP8 blocks): the kernel's GELU
# passes against their reference and timed; d12 and d48 default against --fp8-gelu-cast 0, interleaved twice
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 80 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 70 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
TP d12_default -e d12
TP d12_nogelu -e d12 -- --fp8-gelu-cast 0
TP d48_default -e d48
TP d48_nogelu -e d48 -- --fp8-gelu-cast 0
T check; timeout 100 python3 bench/kernels_gpu_check.py --checks fp8_gelu --out $OUT/check.json >>$L 2>&1
TP d12_default_2 -e d12
TP d12_nogelu_2 -e d12 -- --fp8-gelu-cast 0
TP d48_default_2 -e d48
TP d48_nogelu_2 -e d48 -- --fp8-gelu-cast 0
T done
