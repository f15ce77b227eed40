# issue 21, tenth session, call 1 (2026-12-03): d12's FP8 levers beside the default (the FP8 logits): delayed FP8
# blocks with the cast kernel and with Inductor's casts (--fp8-cast-kernel 0: with the scale known ahead, Inductor may
# fuse each cast into its producer), FP8 blocks with the FP8 logits, with CUDA graphs; d48's default beside
# Inductor's casts and the FP8 logits
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 100 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 90 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
TP d12_default -e d12
TP d12_fp8 -e d12 -- --fp8 1
TP d12_fp8_inductor_casts -e d12 -- --fp8 1 --fp8-cast-kernel 0
TP d12_fp8_logits -e d12 -- --fp8 1 --fp8-classifier 2
TP d12_fp8_logits_graphs -e d12 -- --fp8 1 --fp8-classifier 2 --compile-mode reduce-overhead
TP d48_default -e d48
TP d48_inductor_casts -e d48 -- --fp8-cast-kernel 0
TP d48_fp8_logits -e d48 -- --fp8-classifier 2
TP d48_default_again -e d48
T done
