# session 2026-12-03 (eighth), call 3: --fp8-classifier's two passes over the logits, variants (.carry/exp/fp8c_kernels.py);
# the default path now (the FP8 output layer at d12) against the bf16 path in one sitting; the default path's
# loss check, second sitting (two bf16 runs, two default runs)
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 170 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 100 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T kernels; PYTHONPATH=src timeout 90 python3 .carry/exp/fp8c_kernels.py $OUT/kernels.json >>$L 2>&1
TP default -e d12 d48
TP bf16 -e d12 -- --fp8-classifier 0
T loss_default; timeout 330 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline --timeout 100 --out $OUT/loss_default.json -- --fp8 -1 --fp8-classifier -1 >>$L 2>&1
T done
