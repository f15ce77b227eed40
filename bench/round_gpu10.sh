#!/usr/bin/env bash
# Device call (issue 4), for the next session: --bf16-params 1 (bf16 parameters, fp32 master copy in the
# optimizer, llm.c's -w 1 layout) against the default fp32 parameters, d48 and d12 on one machine, then a
# kernel profile of d48 with the faster of the two.
source bench/device_env.sh
timeout 90 python3 bench/kernels_gpu_check.py --checks adamw --reps 3 --out $R/kernels.json > $R/kernels.txt 2>&1
tail -6 $R/kernels.txt; echo "[$SECONDS s]"
timeout 90 python3 -m pytest -q tests/test_kernels_master_adamw.py > $R/master_adamw_tests.txt 2>&1  # compiled Triton
tail -3 $R/master_adamw_tests.txt; echo "[$SECONDS s]"
for run in d48:1 d48:0 d12:1 d12:0; do
  m=${run%:*}; bp=${run#*:}
  timeout 130 python3 bench/throughput.py --paths fast -e $m --steps 8 --warmup 3 --out $R/tp_${m}_bp$bp.json \
      --keep-logs $R/logs_${m}_bp$bp -- --bf16-params $bp 2>&1 | tail -1; echo "[$SECONDS s] --bf16-params $bp"
done
timeout $((580 - SECONDS)) python3 bench/profile_step.py --out $R/prof_d48 -- "${DATA[@]}" -e d48 -b 16 -t 1024 \
    -d 65536 -r 0 --bf16-params 1 > $R/prof_d48.log 2>&1; head -20 $R/prof_d48/profile.txt; echo "[$SECONDS s]"
tar czf $OUT/results.tar.gz -C /tmp results
