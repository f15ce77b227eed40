#!/usr/bin/env bash
# Device call (issue 4): the -w 0 AdamW check, then bench/throughput.py on the final fast path (d12, d48) and plain d12.
source bench/device_env.sh
timeout 60 python3 bench/kernels_gpu_check.py --out $R/kernels.json --checks adamw --reps 3 > $R/kernels.txt 2>&1
tail -6 $R/kernels.txt; echo "[$SECONDS s]"
timeout 200 python3 bench/throughput.py --paths fast plain -e d12 --steps 8 --warmup 3 --out $R/tp_d12.json \
    --keep-logs $R/logs 2>&1 | tail -3; echo "[$SECONDS s]"
timeout 150 python3 bench/throughput.py --paths fast -e d48 --steps 8 --warmup 3 --out $R/tp_d48.json \
    --keep-logs $R/logs 2>&1 | tail -2; echo "[$SECONDS s]"
tar czf $OUT/results.tar.gz -C /tmp results
