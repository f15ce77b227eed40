# issue 21, eleventh session, call 4 (2026-12-03): GELU inside the FP8 casts with the sweep's best launch config
# (64x64 tiles, 4 warps, 8 programs per SM), now the default; d12 and d48 against --fp8-gelu-cast 0
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv >>$L; git status --short >>$L; grep -n "^GELU_BLOCK_M" src/gpt2train/kernels/fp8_cast.py >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 60 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 55 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
TP d12_default -e d12
TP d12_unfused -e d12 -- --fp8-gelu-cast 0
TP d48_default -e d48
T done
