# issue 21, nineteenth session, call 1: the cast kernel's column sums accumulated per program (new tree) against per
# tile (old tree = 65f1508): the passes at d12's and d48's shapes, then d12 and d48 steps, interleaved
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L 2>&1; git status --short >>$L 2>&1; nvidia-smi -L >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; dir=$2; shift 2; T "$name"; (cd $dir && timeout 75 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 70 --out $OUT/tmp.json "$@" >>$L 2>&1); cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
OLD=$PWD/.carry/old
T sweep_old; (PYTHONPATH=$OLD/src timeout 120 python3 .carry/sums_sweep.py old >>$L 2>&1)
T sweep_new; (PYTHONPATH=$PWD/src timeout 150 python3 .carry/sums_sweep.py new >>$L 2>&1)
TP d12_new $PWD -e d12
TP d12_old $OLD -e d12
TP d12_new2 $PWD -e d12
TP d12_old2 $OLD -e d12
TP d48_new $PWD -e d48
TP d48_old $OLD -e d48
cp .carry/gpu77.sh .carry/sums_sweep.py $OUT/
T done
