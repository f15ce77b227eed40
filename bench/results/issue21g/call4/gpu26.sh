# session 2026-12-03 (seventh), call 4: where the landed tree's warm d48 start goes (sampled, torch's compile phases)
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L
timeout 140 python3 -m bench startup -i "$I" -j "$J" --out $OUT/su_d48_sampled.json -e d48 --warm 2 --sample >>$L 2>&1
date -u >>$L
