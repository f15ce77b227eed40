# session 2026-12-03 (eighth), call 2: --fp8-classifier's parts timed alone at d12 (tile sizes, fast accumulation,
# chunk sizes); the 200-step loss check of --fp8-classifier 1 (two runs, two bf16 runs first, one sitting) and of
# the fastest d12 combination (--fp8 1 --fp8-scaling delayed --compile-mode reduce-overhead --fp8-classifier 1)
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
T parts; PYTHONPATH=src timeout 100 python3 .carry/exp/fp8c_parts.py $OUT/parts.json >>$L 2>&1
T loss_fc; timeout 330 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline --timeout 100 --out $OUT/loss_fc.json -- --fp8-classifier 1 >>$L 2>&1
T loss_combo; timeout 165 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline-from $OUT/loss_fc.json --timeout 80 --out $OUT/loss_combo.json -- --fp8 1 --fp8-scaling delayed --compile-mode reduce-overhead --fp8-classifier 1 >>$L 2>&1
T done
