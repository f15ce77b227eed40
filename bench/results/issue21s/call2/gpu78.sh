# issue 21, nineteenth session, call 2: the sums passes' launches tuned (working tree) against 66981d3 (a: the
# accumulator alone) and 65f1508 (old: sums per tile): the passes, then d12 and d48 steps interleaved
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi -L >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; dir=$2; shift 2; T "$name"; (cd $dir && timeout 75 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 70 --out $OUT/tmp.json "$@" >>$L 2>&1); cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
OLD=$PWD/.carry/old; A=$PWD/.carry/a
T sweep_new; (PYTHONPATH=$PWD/src timeout 100 python3 .carry/sums_sweep.py new >>$L 2>&1)
TP d12_b $PWD -e d12
TP d12_old $OLD -e d12
TP d12_a $A -e d12
TP d12_b2 $PWD -e d12
TP d12_old2 $OLD -e d12
TP d12_a2 $A -e d12
TP d48_b $PWD -e d48
TP d48_old $OLD -e d48
TP d48_a $A -e d48
TP d48_b2 $PWD -e d48
TP d48_old2 $OLD -e d48
cp .carry/gpu78.sh .carry/sums_sweep.py $OUT/
T done
