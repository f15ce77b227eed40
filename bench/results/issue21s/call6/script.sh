# issue 21, nineteenth session, call 6: d48's default step profiled on the landed tree (d37fe6a's files; the device's
# git metadata said 65f1508)
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1; I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"; git log --oneline -1 > $OUT/log.txt 2>&1; timeout 170 python3 -m bench profile --out $OUT/p48 --steps 2 -- -i "$I" -j "$J" -e d48 -b 16 -t 1024 -d 65536 -r 0 >> $OUT/log.txt 2>&1; rm -f $OUT/p48/profile.json; head -16 $OUT/p48/profile.txt
