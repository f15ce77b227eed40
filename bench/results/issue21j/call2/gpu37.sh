# issue 21, tenth session, call 2 (2026-12-03): the loss check of FP8 blocks (delayed scaling, the default wherever
# they run) with the FP8 logits, the pair d48's default would take if it holds twice; a d12 FP8 profile
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
T loss_pair; timeout 330 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline --timeout 100 --out $OUT/loss_pair.json -- --fp8 1 --fp8-classifier 2 >>$L 2>&1
T prof_d12_fp8; timeout 150 python3 -m bench profile --out $OUT/prof_d12_fp8 --steps 2 -- -i "$I" -j "$J" -e d12 -b 64 -t 1024 -d 524288 -r 0 --fp8 1 --fp8-classifier 2 >>$L 2>&1
T done
