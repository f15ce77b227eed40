#!/usr/bin/env bash
# Device call (issue 4): -ge 1 (GELU in c_fc's cuBLASLt epilogue, compiled GELU backward) against -ge 0 and
# -ge 2 (backward DGELU epilogue too), after the kernel check of the three backward variants.
source bench/device_env.sh
timeout 100 python3 bench/kernels_gpu_check.py --checks gelu_mlp --dtypes autocast --reps 10 \
    --out $R/gelu_mlp.json > $R/gelu_mlp.txt 2>&1; grep -v '^{' $R/gelu_mlp.txt | grep -v overhead | tail -16
echo "[$SECONDS s]"
for run in d12:1 d12:0 d48:1 d48:0 d12:2; do
  m=${run%:*}; ge=${run#*:}
  [ $SECONDS -gt 400 ] && break
  timeout 130 python3 bench/throughput.py --paths fast -e $m --steps 8 --warmup 3 --out $R/tp_${m}_ge$ge.json \
      --keep-logs $R/logs_${m}_ge$ge -- -ge $ge 2>&1 | tail -1; echo "[$SECONDS s] -ge $ge"
done
tar czf $OUT/results.tar.gz -C /tmp results
