# issue 21, eighteenth session, call 7 (the final tree: --fp8-classifier -1 takes 4 beside FP8 blocks, CUDA graphs
# opt-in): start-up cold and warm at d12 and d48, d12's step by default / with CUDA graphs / with the old default's
# --fp8-classifier 2, and a profile of d12's default step
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L; git status --short >>$L; nvidia-smi -L >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; dir=$2; shift 2; T "$name"; (cd $dir && timeout 75 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 70 --out $OUT/tmp.json "$@" >>$L 2>&1); cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T startup; timeout 220 python3 -m bench startup -i "$I" -j "$J" -e d12 d48 --warm 1 --out $OUT/startup.json >>$L 2>&1
TP d12_default $PWD -e d12
TP d12_graphs $PWD -e d12 -- --compile-mode reduce-overhead
TP d12_cls2 $PWD -e d12 -- --fp8-classifier 2
T profile; timeout 120 python3 -m bench profile --out $OUT/p_def --steps 2 -- -i "$I" -j "$J" -e d12 -b 64 -t 1024 -d 524288 -r 0 >>$L 2>&1
T done
