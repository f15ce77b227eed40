# issue 21, sixteenth session, call 2: the modern recipe with FP8 blocks: its loss check against the modern recipe's
# bf16 fast path (bench loss-check --recipe modern), then the time to loss of classic (its default), modern and
# modern+fp8
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L; git status --short >>$L; nvidia-smi -L >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
T loss_check_modern; timeout 350 python3 -m bench loss-check -i "$I" -j "$J" --recipe modern --runs 2 --baseline --timeout 100 --out $OUT/loss_modern.json -- --fp8 1 >>$L 2>&1
T time_to_loss; timeout 190 python3 -m bench time-to-loss --train "$I" --val "$J" --variants modern,modern+fp8 --budget-s 150 --run-timeout-s 90 -o $OUT/ttl.json >>$L 2>&1
T done
