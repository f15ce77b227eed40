# issue 21, fifteenth session, call 1: the cast kernel's passes in variants (.carry/sweep57.py: tiles, warps,
# programs, eviction hints, a per-tile amax, the transposed store's forms, TMA descriptors), bytes checked against
# the product kernel's; then d12 twice and d48 once on this tree (f08f64d)
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L; git status --short >>$L; nvidia-smi >>$L 2>&1
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; dir=$2; shift 2; T "$name"; (cd $dir && timeout 60 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 55 --out $OUT/tmp.json "$@" >>$L 2>&1); cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T sweep; timeout 300 python3 .carry/sweep57.py gelu_fwd gelu_bwd cast grad d48 >>$L 2>&1
TP d12_a $PWD -e d12
TP d48_a $PWD -e d48
TP d12_b $PWD -e d12
T done
