# issue 21, eighteenth session, call 6 (warm machine after call 5): d48's step with the new default beside
# --fp8-classifier 2, the capped d48 B=40 with --recompute-whole -1, start-up cold and warm at d12 and d48
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L; git status --short >>$L; nvidia-smi -L >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; dir=$2; shift 2; T "$name"; (cd $dir && timeout 100 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 95 --out $OUT/tmp.json "$@" >>$L 2>&1); cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
TP d48_new_default $PWD -e d48
TP d48_old_default $PWD -e d48 -- --fp8-classifier 2
T capped; timeout 150 python3 -m bench capped --mib 80300 -- train -i "$I" -j "$J" -e d48 -b 40 -t 1024 -d 40960 -r 2 --recompute-whole -1 -x 4 >>$L 2>&1
T startup; timeout 200 python3 -m bench startup -i "$I" -j "$J" -e d12 d48 --warm 1 --out $OUT/startup.json >>$L 2>&1
T done
