#!/usr/bin/env bash
# Device call (issue 4), round 14, on nvidia-h200 (the only kind lent on 2026-11-28, so every figure here is
# compared only with others from the same machine): weight gradients summed by the matmuls
# (--accumulate-in-matmul, kernels/grad_accum.py) against autograd's sums -- the kernel check, d48 B=16 and
# d12 B=64 tok/s both ways --, the d48 profile with it, -b auto at d48 with the optimizer state held aside,
# and a warm start (the d12 graph compiled by the throughput run). Progress goes to $OUT/summary.txt as it
# runs; the logs are tarred into $OUT/round14.tgz at the end.
source bench/device_env.sh
timeout 150 python3 bench/kernels_gpu_check.py --checks grad_accum --reps 5 --out $R/kernels.json > $R/kernels.txt 2>&1
grep -E '"check": "grad_accum"' $R/kernels.txt | tee -a $S; say "[$SECONDS s] kernels"
for run in d48:1 d48:0 d12:1 d12:0; do
  m=${run%:*}; a=${run#*:}
  timeout 150 python3 bench/throughput.py --paths fast -e $m --steps 8 --warmup 3 --out $R/tp_${m}_acc$a.json \
      --keep-logs $R/logs_${m}_acc$a -- --accumulate-in-matmul $a 2>&1 | tail -1 | tee -a $S
  grep -hE "^step +[0-9]+/" $R/logs_${m}_acc$a/*.txt | cut -c1-60 | tr '\n' ' ' | tee -a $S; echo | tee -a $S
  say "[$SECONDS s] $m --accumulate-in-matmul $a"
done
profile_d48 $R/prof_d48
say "[$SECONDS s] profile"
timeout 90 python3 -m gpt2train train "${DATA[@]}" -e d12 -b 64 -t 1024 -d 524288 -x 2 -v 100 -s 0 -r 0 \
    > $R/d12_warm_start.txt 2>&1
grep -E "time to first step|^step +2/" $R/d12_warm_start.txt | cut -c1-160 | tee -a $S; say "[$SECONDS s] warm start"
timeout 200 python3 -m gpt2train train "${DATA[@]}" -e d48 -b auto -t 1024 -d 65536 -x 3 -v 100 -m 1 -s 0 -r 0 \
    > $R/d48_auto.txt 2>&1
grep -iE "auto|^step +3/|^peak GPU|error|out of memory" $R/d48_auto.txt | cut -c1-200 | tee -a $S
say "[$SECONDS s] -b auto rc=$?"
tar czf $OUT/round14.tgz -C $R .
