# session 2026-12-02d, call 1: --fp8 1's default routing (every operand through the cast kernel, dynamic scaling) at
# d48 and d12 beside bf16; CUDA graphs and the kernel behind triton_op against the host's launch overhead; warm
# starts (the second start of each shape); the kernel's amax record on the GPU; a cProfile of a warm d48 start
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD/.carry/exp
I=".carry/corpus/corpus_train_*.bin"; J=".carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; t=$2; shift 2; T "$name"; timeout $t python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 100 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
TP fp8_default 150 -e d48 d12 -- --fp8 1
TP bf16 150 -e d48 d12
TP fp8_graphs 110 -e d48 -- --fp8 1 --compile-mode reduce-overhead
EXP_CAST=triton_op TP fp8_tritonop 90 -e d48 -- --fp8 1
TP bf16_warm 110 -e d48 d12
TP fp8_warm 60 -e d48 -- --fp8 1
T gpu_check; timeout 60 env PYTHONPATH=src python3 bench/kernels_gpu_check.py --checks fp8_cast --no-compile >>$L 2>&1
T startup_profile; timeout 45 env PYTHONPATH=src python3 -m cProfile -o $OUT/startup_d48_warm.prof -m gpt2train train -i "$I" -j "$J" -o /tmp/runp -e d48 -b 16 -t 1024 -d 65536 -x 1 -v 0 -m 1 -s 0 -r 0 -w 1 -l 6e-4 --no-tensorboard >>$L 2>&1
T done
