# session 2026-12-02c, call 3: the loss check of --fp8-cast-kernel 1 with dynamic scaling (fp32 operands now rounded
# to bf16 first), against call 2's bf16 runs; a d48 profile of delayed scaling; d48 delayed twice (cold, warm start);
# --fp8 2 with delayed scaling
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I=".carry/corpus/corpus_train_*.bin"; J=".carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L; git log --oneline -1 >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 150 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 70 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
TP delayed_cold -e d48 -- --fp8 1 --fp8-cast-kernel 1 --fp8-scaling delayed
TP delayed_warm -e d48 -- --fp8 1 --fp8-cast-kernel 1 --fp8-scaling delayed
TP bf16 -e d48
T loss_dynamic_kernel; timeout 200 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline-from .carry/out7/loss_delayed.json --timeout 95 --out $OUT/loss_dynamic_kernel.json -- --fp8 1 --fp8-cast-kernel 1 >>$L 2>&1
T prof_delayed; timeout 110 python3 -m bench profile --out /tmp/prof --steps 2 -- -i "$I" -j "$J" -e d48 -b 16 -t 1024 -d 65536 -r 0 --fp8 1 --fp8-cast-kernel 1 --fp8-scaling delayed >>$L 2>&1; cp /tmp/prof/profile.txt $OUT/prof_d48_delayed.txt
TP delayed_fp8_2 -e d48 -- --fp8 2 --fp8-cast-kernel 1 --fp8-scaling delayed
T startup_profile; timeout 90 python3 -m cProfile -o $OUT/startup_d48_warm.prof -m gpt2train train -i "$I" -j "$J" -o /tmp/runp -e d48 -b 16 -t 1024 -d 65536 -x 1 -v 0 -m 1 -s 0 -r 0 -w 1 -l 6e-4 --no-tensorboard >>$L 2>&1
T done
