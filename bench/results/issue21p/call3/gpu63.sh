# issue 21, sixteenth session, call 3: the modern recipe's default (--fp8 -1 now takes FP8 blocks for it): its
# second loss-check sitting against its bf16 fast path, then d12 B=64: classic default, modern default, modern with
# CUDA graphs
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L; git status --short >>$L; nvidia-smi -L >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; dir=$2; shift 2; T "$name"; (cd $dir && timeout 60 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 55 --out $OUT/tmp.json "$@" >>$L 2>&1); cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T loss_check_modern_default; timeout 350 python3 -m bench loss-check -i "$I" -j "$J" --recipe modern --runs 2 --baseline --timeout 100 --out $OUT/loss_modern.json -- --fp8 -1 >>$L 2>&1
TP d12_modern_default $PWD -e d12 -- --recipe modern
TP d12_classic_default $PWD -e d12
TP d12_modern_graphs $PWD -e d12 -- --recipe modern --compile-mode reduce-overhead
T done
