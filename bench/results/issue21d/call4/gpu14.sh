# session 2026-12-02d, call 4: call 3's loss check failed for --fp8 1 (+0.0120; -0.0034 in the third session's
# call 3): a third sitting, three runs each, for the spread of both paths
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I=".carry/corpus/corpus_train_*.bin"; J=".carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
T loss_check; timeout 470 python3 -m bench loss-check -i "$I" -j "$J" --runs 3 --baseline --timeout 100 --out $OUT/loss_fp8_3runs.json -- --fp8 1 >>$L 2>&1
T done
