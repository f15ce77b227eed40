# issue 21, eighteenth session, call 4: the new default (--fp8-classifier -1 -> 4 beside FP8 blocks, --compile-mode
# auto -> CUDA graphs at d12): its 200-step loss check, and d12's step beside the old default, interleaved
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L; git status --short >>$L; nvidia-smi -L >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; dir=$2; shift 2; T "$name"; (cd $dir && timeout 75 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 70 --out $OUT/tmp.json "$@" >>$L 2>&1); cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
TP d12_new_default $PWD -e d12
TP d12_old_default $PWD -e d12 -- --compile-mode default --fp8-classifier 2
T loss_check_default; timeout 360 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline --timeout 150 --out $OUT/loss_default.json >>$L 2>&1
TP d12_new_default2 $PWD -e d12
TP d12_old_default2 $PWD -e d12 -- --compile-mode default --fp8-classifier 2
T done
