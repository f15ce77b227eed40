# issue 21, eleventh session, call 1 (2026-12-03): the copy-only transpose's bits on the GPU; d48's default beside
# --fp8-cast-kernel 2 and --fp8-cache-weights 1, interleaved; d12's default beside FP8 blocks (twice each) and FP8
# blocks with --fp8-cast-kernel 2 / --fp8-cache-weights 1
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 80 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 70 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T check; timeout 60 python3 bench/kernels_gpu_check.py --checks fp8_cast --no-compile --out $OUT/check.json >>$L 2>&1
TP d48_default -e d48
TP d48_ck2 -e d48 -- --fp8-cast-kernel 2
TP d48_cache -e d48 -- --fp8-cache-weights 1
TP d48_default_2 -e d48
TP d48_ck2_2 -e d48 -- --fp8-cast-kernel 2
TP d48_cache_2 -e d48 -- --fp8-cache-weights 1
TP d12_default -e d12
TP d12_fp8 -e d12 -- --fp8 1
TP d12_fp8_ck2 -e d12 -- --fp8 1 --fp8-cast-kernel 2
TP d12_fp8_cache -e d12 -- --fp8 1 --fp8-cache-weights 1
TP d12_default_2 -e d12
TP d12_fp8_2 -e d12 -- --fp8 1
TP d48_ck2_cache -e d48 -- --fp8-cast-kernel 2 --fp8-cache-weights 1
T done
