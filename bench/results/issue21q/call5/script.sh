# issue 21, seventeenth session, call 5 (the last 345 s of device time): --fp8-classifier 4 with the target term
# times the e4m3 copies: two lever runs of the loss check (no baseline: compared with this session's four bf16 runs,
# an indication only), then its d12 step
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L; nvidia-smi -L >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
T loss_runs_cls4; timeout 190 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --timeout 90 --out $OUT/loss_cls4.json -- --fp8-classifier 4 >>$L 2>&1
T d12_cls4; timeout 45 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 40 --out $OUT/tp.json -e d12 -- --fp8-classifier 4 >>$L 2>&1
T done
