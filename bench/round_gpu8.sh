#!/usr/bin/env bash
# Device call (issue 4): the cuBLASLt GELU-epilogue MLP (-ge) checked against its reference, then d12/d48
# throughput with -ge on and off on the same machine, then a kernel profile of d12 with -ge on.
source bench/device_env.sh
timeout 150 python3 bench/kernels_gpu_check.py --checks gelu_mlp --dtypes autocast --reps 10 \
    --out $R/gelu_mlp.json > $R/gelu_mlp.txt 2>&1; grep -v '^{' $R/gelu_mlp.txt | tail -22; echo "[$SECONDS s]"
for m in d12 d48; do
  for ge in 1 0; do
    timeout 150 python3 bench/throughput.py --paths fast -e $m --steps 8 --warmup 3 --out $R/tp_${m}_ge$ge.json \
        --keep-logs $R/logs_${m}_ge$ge -- -ge $ge 2>&1 | tail -2; echo "[$SECONDS s]"
  done
done
timeout $((580 - SECONDS)) python3 bench/profile_step.py --out $R/prof_d12_ge1 -- "${DATA[@]}" -e d12 -b 64 \
    -t 1024 -d 524288 -r 0 -ge 1 > $R/prof_d12_ge1.log 2>&1; head -20 $R/prof_d12_ge1/profile.txt; echo "[$SECONDS s]"
tar czf $OUT/results.tar.gz -C /tmp results
