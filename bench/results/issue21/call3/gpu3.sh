# issue 21, call 3: start-up cold/warm with the device-side model build; the 200-step loss check of --fp8 2, twice,
# and of --fp8 2 --fp8-bf16 first,last, twice
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I=".carry/corpus/corpus_train_*.bin"; J=".carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L; git log --oneline -1 >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
T cold; timeout 100 python3 -m bench throughput -i "$I" -j "$J" -e d12 d48 --paths fast --steps 8 --timeout 60 --out $OUT/tp_cold.json >>$L 2>&1
T warm; timeout 100 python3 -m bench throughput -i "$I" -j "$J" -e d12 d48 --paths fast --steps 8 --timeout 60 --out $OUT/tp_warm.json >>$L 2>&1
T loss_fp8; timeout 190 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --timeout 95 --out $OUT/loss_fp8.json -- --fp8 2 >>$L 2>&1
T loss_fp8_ends; timeout 190 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --timeout 95 --out $OUT/loss_fp8_ends.json -- --fp8 2 --fp8-bf16 first,last >>$L 2>&1
T done
