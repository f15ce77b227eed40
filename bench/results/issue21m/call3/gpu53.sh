# issue 21, thirteenth session, call 3 (2026-12-03): the CE kernel's variants standalone (one exp a logit in the max
# pass, persistent grids) and the output layer by chunk and FP8 mode; then d12's step with the fastest variant against
# 7f135b2's kernel (in .carry/old), interleaved twice; --fp8-classifier 1 with it; Inductor's code of d12's step
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; dir=$2; shift 2; T "$name"; (cd $dir && timeout 80 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 70 --out $OUT/tmp.json "$@" >>$L 2>&1); cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T ce_sweep; (cd .carry/exp && PYTHONPATH=$PWD/../../src timeout 150 python3 ce_sweep.py $OUT/ce_sweep.json >>$L 2>&1)
python3 .carry/pick_ce.py $OUT/ce_sweep.json .carry/newbest >>$L 2>&1 || { rm -rf .carry/newbest; mkdir .carry/newbest; cp -r src bench .carry/newbest/; echo "pick failed: this tree" >>$L; }
TP d12_old $PWD/.carry/old -e d12
TP d12_new $PWD/.carry/newbest -e d12
TP d12_old_2 $PWD/.carry/old -e d12
TP d12_new_2 $PWD/.carry/newbest -e d12
TP d12_new_cls1 $PWD/.carry/newbest -e d12 -- --fp8-classifier 1
T code; PYTHONPATH=$PWD/src TORCH_LOGS=output_code TORCHINDUCTOR_FORCE_DISABLE_CACHES=1 timeout 120 python3 -m gpt2train train -i "$I" -j "$J" -o /tmp/rc -e d12 -b 64 -t 1024 -d 524288 -x 1 -v 0 -m 1 -s 0 -r 0 -w 1 -l 6e-4 --no-tensorboard > $OUT/code.txt 2>&1; gzip $OUT/code.txt
T done
