#!/usr/bin/env bash
# Device call (issue 4): classifier check, then d12/d48 throughput with bf16 residual + 16k chunks; max-autotune try.
source bench/device_env.sh
timeout 100 python3 bench/kernels_gpu_check.py --out $R/kernels.json --checks classifier --shapes d12 --dtypes bf16,autocast \
  --chunk-rows 16384 --chunk-sweep 8192 --no-compile --reps 3 > $R/kernels.txt 2>&1; tail -12 $R/kernels.txt; echo "[$SECONDS s]"
tp() { name=$1; shift; timeout ${TO:-150} python3 bench/throughput.py --paths fast --steps 10 --warmup 3 --out $R/tp_$name.json \
    --keep-logs $R/logs_$name "$@" 2>&1 | tail -2; echo "[$SECONDS s]"; }
tp d12_new -e d12
tp d48_new -e d48
timeout 120 python3 bench/profile_step.py --out $R/prof_d12 -- "${DATA[@]}" -e d12 -b 64 -t 1024 -d 524288 -r 0 -s 0 \
    > $R/prof_d12.log 2>&1; head -34 $R/prof_d12.log | tail -28; echo "[$SECONDS s]"
TO=240 tp d12_autotune -e d12 -- --compile-mode max-autotune-no-cudagraphs
tar czf $OUT/results.tar.gz -C /tmp results
