# issue 21, eighteenth session, call 5 (the machine of call 4, warm): the loss check of call 4's default
# (--fp8-classifier 4 with CUDA graphs, which leave the numerics alone)
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1; date -u > $OUT/log.txt; timeout 420 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline --timeout 150 --out $OUT/loss_default.json -- --fp8-classifier 4 --compile-mode auto >>$OUT/log.txt 2>&1
