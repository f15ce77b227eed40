#!/usr/bin/env bash
# Device call (issue 4): the flattened --bf16-params update (one kernel launch per parameter group) as the fast
# path's default (-bp -1 resolves to 1 in one process), against -bp 0 on the same machine, d48 and d12; then a
# kernel profile of the default d48 step, with its idle gaps.
source bench/device_env.sh
timeout 120 python3 bench/kernels_gpu_check.py --checks adamw --reps 5 --out $R/kernels.json > $R/kernels.txt 2>&1
grep -E "^adamw|failures" $R/kernels.txt; echo "[$SECONDS s]"
for run in d48:-1 d48:0 d12:-1 d12:0; do
  m=${run%:*}; bp=${run#*:}
  timeout 130 python3 bench/throughput.py --paths fast -e $m --steps 8 --warmup 3 --out $R/tp_${m}_bp$bp.json \
      --keep-logs $R/logs_${m}_bp$bp -- --bf16-params $bp 2>&1 | tail -1; echo "[$SECONDS s] --bf16-params $bp"
done
grep -h "master in the opt\|time to first" $R/logs_d48_bp-1/*.txt | head -3
timeout $((585 - SECONDS)) python3 bench/profile_step.py --out $R/prof_d48 -- "${DATA[@]}" -e d48 -b 16 -t 1024 \
    -d 65536 -r 0 > $R/prof_d48.log 2>&1; head -14 $R/prof_d48/profile.txt; echo "[$SECONDS s]"
tail -11 $R/prof_d48/profile.txt
tar czf $OUT/results.tar.gz -C /tmp results
