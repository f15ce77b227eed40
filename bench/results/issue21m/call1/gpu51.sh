# issue 21, thirteenth session, call 1 (2026-12-03): d12 profiles with the idle split (default, CUDA graphs, the
# q/k/v gather), then start-up cold (with the bytecode fill) and warm at d12 and d48
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
PR() { name=$1; shift; T "profile $name"; timeout 120 python3 -m bench profile --out $OUT/$name --steps 2 -- -i "$I" -j "$J" -e d12 -b 64 -t 1024 -d 524288 -r 0 "$@" >>$L 2>&1; }
PR p_def
PR p_graphs --compile-mode reduce-overhead
PR p_qkv --fp8-qkv-cast 1
T startup; timeout 300 python3 -m bench startup -i "$I" -j "$J" -e d12 d48 --warm 1 --out $OUT/startup.json >>$L 2>&1
T done
