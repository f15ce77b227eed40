# session 2026-12-03 (ninth), call 2: the 200-step loss check (one sitting): delayed scaling (--fp8 1 --fp8-scaling
# delayed, the candidate default wherever FP8 runs) and --fp8-classifier 2 (the logits' matmul in FP8), two runs
# each, against two runs of the bf16 fast path
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
T loss_delayed; timeout 330 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline --timeout 100 --out $OUT/loss_delayed.json -- --fp8 1 --fp8-scaling delayed >>$L 2>&1
T loss_fc2; timeout 170 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline-from $OUT/loss_delayed.json --timeout 80 --out $OUT/loss_fc2.json -- --fp8-classifier 2 >>$L 2>&1
T done
