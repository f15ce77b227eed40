# issue 21, thirteenth session, call 4 (2026-12-03): ce_grad_kernel by tile and warps against a one-read kernel
# (standalone); the loss check of --fp8-classifier 1 on the default; d12 with the fastest tile against 7f135b2's
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; dir=$2; shift 2; T "$name"; (cd $dir && timeout 80 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 70 --out $OUT/tmp.json "$@" >>$L 2>&1); cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T ce_sweep2; (cd .carry/exp && PYTHONPATH=$PWD/../../src timeout 60 python3 ce_sweep2.py $OUT/ce_sweep2.json >>$L 2>&1)
python3 .carry/pick_ce.py $OUT/ce_sweep2.json .carry/newbest >>$L 2>&1 || { rm -rf .carry/newbest; cp -r .carry/old .carry/newbest; echo "pick failed: 7f135b2's" >>$L; }
T loss_check; timeout 360 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline --timeout 100 --out $OUT/loss.json -- --fp8 -1 --fp8-gelu-cast -1 --fp8-classifier 1 >>$L 2>&1
TP d12_old $PWD/.carry/old -e d12
TP d12_tuned $PWD/.carry/newbest -e d12
TP d12_old_2 $PWD/.carry/old -e d12
TP d12_tuned_2 $PWD/.carry/newbest -e d12
T done
