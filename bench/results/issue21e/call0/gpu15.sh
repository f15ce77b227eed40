# session 2026-12-02e, call 1: does FP8's loss cost come from the forward matmuls' fast accumulation (--fp8 2, fast
# accumulation in the gradient matmuls too, cost +0.019 where --fp8 1 cost +0.007)? Loss check of two experimental
# variants against bf16 in one sitting: A forward exact accumulation, B gradients in e4m3 instead of e5m2; then
# d48 B=16 speed of A against --fp8 1 as it is
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I=".carry/corpus/corpus_train_*.bin"; J=".carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; t=$2; shift 2; T "$name"; timeout $t python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 100 --keep-logs $OUT/logs_$name --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
LC="python3 -m bench loss-check -i $I -j $J --timeout 100"
T loss_A; GPT2TRAIN_EXP_FWD_FAST_ACCUM=0 timeout 320 $LC --runs 2 --baseline --out $OUT/loss_A.json -- --fp8 1 >>$L 2>&1
T loss_B; GPT2TRAIN_EXP_GRAD_E4M3=1 timeout 150 $LC --runs 2 --baseline-from $OUT/loss_A.json --out $OUT/loss_B.json -- --fp8 1 >>$L 2>&1
export GPT2TRAIN_EXP_FWD_FAST_ACCUM=0; TP d48_A 50 -e d48 -- --fp8 1; unset GPT2TRAIN_EXP_FWD_FAST_ACCUM
TP d48_now 50 -e d48 -- --fp8 1
T done
