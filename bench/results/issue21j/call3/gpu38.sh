# issue 21, tenth session, call 3 (2026-12-03): the cast kernel's tiles, a persistent and a TMA variant (bits and
# time, amax on); the loss check of FP8 blocks with the FP8 logits, second sitting; d48 default vs the FP8 logits
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 100 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 90 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T sweep; timeout 150 python3 .carry/exp/cast_sweep.py $OUT/sweep.json >>$L 2>&1
T loss_pair; timeout 330 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline --timeout 100 --out $OUT/loss_pair.json -- --fp8 1 --fp8-classifier 2 >>$L 2>&1
TP d48_default -e d48
TP d48_fp8_logits -e d48 -- --fp8-classifier 2
T done
