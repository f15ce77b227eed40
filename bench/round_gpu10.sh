#!/usr/bin/env bash
# Device call (issue 4): --bf16-params 1 (bf16 parameters, fp32 master copy in the optimizer, llm.c's -w 1
# layout) against the default fp32 parameters, d48 and d12 on one machine, then kernel profiles (with the idle
# gaps and the host ops behind them) of both with --bf16-params 1.
source bench/device_env.sh
timeout 120 python3 bench/kernels_gpu_check.py --checks adamw --reps 3 --out $R/kernels.json > $R/kernels.txt 2>&1
tail -12 $R/kernels.txt; echo "[$SECONDS s]"
for run in d48:1 d48:0 d12:1 d12:0; do
  m=${run%:*}; bp=${run#*:}
  timeout 130 python3 bench/throughput.py --paths fast -e $m --steps 8 --warmup 3 --out $R/tp_${m}_bp$bp.json \
      --keep-logs $R/logs_${m}_bp$bp -- --bf16-params $bp 2>&1 | tail -1; echo "[$SECONDS s] --bf16-params $bp"
done
timeout 100 python3 bench/profile_step.py --out $R/prof_d12 -- "${DATA[@]}" -e d12 -b 64 -t 1024 \
    -d 524288 -r 0 --bf16-params 1 > $R/prof_d12.log 2>&1; head -4 $R/prof_d12/profile.txt; echo "[$SECONDS s]"
timeout $((585 - SECONDS)) python3 bench/profile_step.py --out $R/prof_d48 -- "${DATA[@]}" -e d48 -b 16 -t 1024 \
    -d 65536 -r 0 --bf16-params 1 > $R/prof_d48.log 2>&1; head -4 $R/prof_d48/profile.txt; echo "[$SECONDS s]"
tail -12 $R/prof_d48/profile.txt
tar czf $OUT/results.tar.gz -C /tmp results
