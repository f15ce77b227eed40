# session 2026-12-03, call 3 (right after call 2): a profile of d48's default step (FP8 by --fp8 -1); d48 with delayed
# scaling and CUDA graphs (e4m3 gradients now); the loss check of --fp8 1 --fp8-scaling delayed with e4m3 gradients
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I=".carry/corpus/corpus_train_*.bin"; J=".carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; t=$2; shift 2; T "$name"; timeout $t python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 100 --keep-logs $OUT/logs_$name --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T prof_default; timeout 100 python3 -m bench profile --out /tmp/prof --steps 2 -- -i "$I" -j "$J" -e d48 -b 16 -t 1024 -d 65536 -r 0 >>$L 2>&1; cp /tmp/prof/profile.txt $OUT/prof_d48_default.txt
TP d48_delayed_graphs 60 -e d48 -- --fp8-scaling delayed --compile-mode reduce-overhead
T loss_delayed; timeout 200 python3 -m bench loss-check -i "$I" -j "$J" --timeout 100 --runs 2 --baseline-from .carry/out17/loss_fp8.json --out $OUT/loss_delayed.json -- --fp8 1 --fp8-scaling delayed >>$L 2>&1
T done
