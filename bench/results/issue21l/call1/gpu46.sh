# issue 21, twelfth session, call 1 (2026-12-03): the default's second loss-check sitting (GELU in the FP8 casts);
# the q/k/v gather's check on the GPU; d12 default against --fp8-qkv-cast 1
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 80 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 70 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T loss; timeout 400 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline --timeout 90 --out $OUT/loss.json --keep-logs $OUT/loss_logs -- --fp8 -1 --fp8-classifier -1 --fp8-gelu-cast -1 >>$L 2>&1
T check; timeout 60 python3 bench/kernels_gpu_check.py --checks fp8_qkv --out $OUT/check.json >>$L 2>&1
TP d12_default -e d12
TP d12_qkv -e d12 -- --fp8-qkv-cast 1
T done
