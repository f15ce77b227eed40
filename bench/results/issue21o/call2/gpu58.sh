# issue 21, fifteenth session, call 2: kernels/fp8_layernorm.py checked on the GPU (bench/kernels_gpu_check.py
# --checks fp8_norm, with fp8_gelu for the GELU passes' new launch), then d12 and d48: the default (e4f77ed's GELU
# launch in it) against --fp8-norm-cast 1
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; dir=$2; shift 2; T "$name"; (cd $dir && timeout 60 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 55 --out $OUT/tmp.json "$@" >>$L 2>&1); cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T check; PYTHONPATH=$PWD/src timeout 150 python3 bench/kernels_gpu_check.py --checks fp8_norm,fp8_gelu --out $OUT/check.json >>$L 2>&1
TP d12_def $PWD -e d12
TP d12_norm $PWD -e d12 -- --fp8-norm-cast 1
TP d48_def $PWD -e d48
TP d48_norm $PWD -e d48 -- --fp8-norm-cast 1
TP d12_norm2 $PWD -e d12 -- --fp8-norm-cast 1
TP d12_def2 $PWD -e d12
T done
