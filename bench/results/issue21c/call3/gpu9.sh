# session 2026-12-02c, call 3 (call 2's FP8 runs failed: torch 2.11's custom-op wrapper and amax's default): delayed
# scaling and the all-operand cast kernel; throughput in one sitting (delayed, bf16), loss checks of delayed and of
# dynamic scaling through the kernel against call 2's bf16 runs (--baseline-from), a d48 profile of delayed, a
# cProfile of a warm d48 start
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I=".carry/corpus/corpus_train_*.bin"; J=".carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 150 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 70 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
TP delayed_kernel -e d48 d12 -- --fp8 1 --fp8-cast-kernel 1 --fp8-scaling delayed
TP bf16 -e d48 d12
T loss_delayed; timeout 200 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline-from .carry/loss_bf16_call2.json --timeout 95 --out $OUT/loss_delayed.json -- --fp8 1 --fp8-cast-kernel 1 --fp8-scaling delayed >>$L 2>&1
T prof_delayed; timeout 110 python3 -m bench profile --out /tmp/prof --steps 2 -- -i "$I" -j "$J" -e d48 -b 16 -t 1024 -d 65536 -r 0 --fp8 1 --fp8-cast-kernel 1 --fp8-scaling delayed >>$L 2>&1; cp /tmp/prof/profile.txt $OUT/prof_d48_delayed.txt
T loss_dynamic_kernel; timeout 200 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline-from .carry/loss_bf16_call2.json --timeout 95 --out $OUT/loss_dynamic_kernel.json -- --fp8 1 --fp8-cast-kernel 1 >>$L 2>&1
T startup_profile; timeout 60 python3 -m cProfile -o $OUT/startup_d48_warm.prof -m gpt2train train -i "$I" -j "$J" -o /tmp/runp -e d48 -b 16 -t 1024 -d 65536 -x 1 -v 0 -m 1 -s 0 -r 0 -w 1 -l 6e-4 --no-tensorboard >>$L 2>&1
T done
