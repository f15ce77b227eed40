# issue 21, twelfth session, call 5 (2026-12-03): our ops registered lean (8ba32e4) against custom_op (9138c10, in
# .carry/old): the op's host time per call on the GPU machine, then d12 default new / old, interleaved
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; dir=$2; shift 2; T "$name"; (cd $dir && timeout 60 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 55 --out $OUT/tmp.json "$@" >>$L 2>&1); cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T overhead; timeout 40 python3 bench/kernels_gpu_check.py --checks op_overhead --out $OUT/check.json >>$L 2>&1
TP d12_lean $PWD -e d12
TP d12_custom_op $PWD/.carry/old -e d12
TP d12_lean_2 $PWD -e d12
TP d12_custom_op_2 $PWD/.carry/old -e d12
T done
