# session 2026-12-02b, call 1: loss check of --fp8 1 (exact gradient accumulation) with the bf16 baseline, twice
# each; --fp8 2 --fp8-bf16 weight-grads twice; d48 throughput of bf16 (twice: cold, warm) and the weight-grads variant
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I=".carry/corpus/corpus_train_*.bin"; J=".carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L; git log --oneline -1 >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
T loss_fp8_1; timeout 340 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline --timeout 95 --out $OUT/loss_fp8_1.json -- --fp8 1 >>$L 2>&1
T loss_fp8_2_wg; timeout 180 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --timeout 95 --out $OUT/loss_fp8_2_wg.json -- --fp8 2 --fp8-bf16 weight-grads >>$L 2>&1
T tp_d48_cold; timeout 60 python3 -m bench throughput -i "$I" -j "$J" -e d48 --paths fast --steps 8 --timeout 55 --out $OUT/tp_d48_cold.json >>$L 2>&1
T tp_d48_warm; timeout 50 python3 -m bench throughput -i "$I" -j "$J" -e d48 --paths fast --steps 8 --timeout 45 --out $OUT/tp_d48_warm.json >>$L 2>&1
T tp_d48_wg; timeout 70 python3 -m bench throughput -i "$I" -j "$J" -e d48 --paths fast --steps 8 --timeout 65 --out $OUT/tp_d48_wg.json -- --fp8 2 --fp8-bf16 weight-grads >>$L 2>&1
T done
