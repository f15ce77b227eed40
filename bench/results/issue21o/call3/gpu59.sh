# issue 21, fifteenth session, call 3: the default's loss check on this tree (the epilogue bias, the cast pass's
# bias sums and the GELU passes' new launch since its last), d12 A/B of the GELU launch (f08f64d, made with
#   rm -rf .carry/old && mkdir -p .carry/old && git archive f08f64d src bench | tar -x -C .carry/old),
# and a d48 profile of the default
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; dir=$2; shift 2; T "$name"; (cd $dir && timeout 60 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 55 --out $OUT/tmp.json "$@" >>$L 2>&1); cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T loss_check; timeout 320 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline --timeout 100 --out $OUT/loss.json -- --fp8 -1 --fp8-gelu-cast -1 >>$L 2>&1
TP d12_new $PWD -e d12
TP d12_old $PWD/.carry/old -e d12
TP d12_new2 $PWD -e d12
TP d12_old2 $PWD/.carry/old -e d12
T profile_d48; timeout 150 python3 -m bench profile --out $OUT/p_d48 --steps 2 -- -i "$I" -j "$J" -e d48 -b 16 -t 1024 -d 65536 -r 0 >>$L 2>&1
T done
