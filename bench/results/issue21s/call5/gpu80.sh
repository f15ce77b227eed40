# issue 21, nineteenth session, call 5: the modern recipe's d12 step (ReLU²'s backward pass with its sums in 8 warps)
# on the working tree against 65f1508, interleaved
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi -L >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; dir=$2; shift 2; T "$name"; (cd $dir && timeout 75 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 70 --out $OUT/tmp.json "$@" >>$L 2>&1); cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
OLD=$PWD/.carry/old
TP modern_new $PWD -e d12 -- --recipe modern
TP modern_old $OLD -e d12 -- --recipe modern
TP modern_new2 $PWD -e d12 -- --recipe modern
cp .carry/gpu80.sh $OUT/
T done
