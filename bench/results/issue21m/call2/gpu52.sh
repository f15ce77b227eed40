# issue 21, thirteenth session, call 2 (2026-12-03): the CE kernel's variants and the output layer by chunk and FP8
# mode (standalone), Inductor's code of d12's step, d12 default against --fp8-classifier 1 (with CUDA graphs too)
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 80 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 70 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T ce_sweep; (cd .carry/exp && timeout 150 python3 ce_sweep.py $OUT/ce_sweep.json >>$L 2>&1)
TP d12_default -e d12
TP d12_cls1 -e d12 -- --fp8-classifier 1
TP d12_cls1_graphs -e d12 -- --fp8-classifier 1 --compile-mode reduce-overhead
TP d12_default_2 -e d12
T code; TORCH_LOGS=output_code TORCHINDUCTOR_FORCE_DISABLE_CACHES=1 timeout 120 python3 -m gpt2train train -i "$I" -j "$J" -o /tmp/rc -e d12 -b 64 -t 1024 -d 524288 -x 1 -v 0 -m 1 -s 0 -r 0 -w 1 -l 6e-4 --no-tensorboard > $OUT/code.txt 2>&1; gzip $OUT/code.txt
T done
