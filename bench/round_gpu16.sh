#!/usr/bin/env bash
# Device call (issue 4), round 16, one GPU: what round 15 left unmeasured. Part 1: the bytes each -r level saves
# on the GPU (bench/recompute_memory.py, -r 2 now llm.c's checkpointed LayerNorms), the d48 and d12 floors
# (bench/throughput.py, fast path; on an H100 these are the figures to set against llm.c's table) and the d48
# profile with the fixed idle count. Part 2: the d48 memory rows of the new -r 2 and the missing B=8 rows
# (bench/memory_table.sh; CAP_MIB=80300 on a card larger than 80 GB, 0 on an H100). Part 3: CUDA graphs
# (--compile-mode reduce-overhead) against the default at d48 and d12, and the B=8 rows at -r 1 and -r 3; first
# the FP8 linear's backward options (fast accumulation, dW in bf16) and its kernels against bf16's, at d48 c_fc.
# Usage: bench/round_gpu16.sh 1|2|3 [CAP_MIB]. Progress goes to $OUT/summary.txt; logs to $OUT/round16_PART.tgz.
source bench/device_env.sh
part=$1 cap=${2:-0}
if [ "$part" = 1 ]; then
  timeout 150 python3 bench/recompute_memory.py --out $R/recompute.json 2>&1 | grep '^{' | tee -a $S
  say "[$SECONDS s] recompute_memory"
  for m in d48 d12; do
    timeout 150 python3 bench/throughput.py --paths fast -e $m --steps 8 --warmup 3 --out $R/tp_$m.json \
        --keep-logs $R/logs_$m 2>&1 | tail -1 | tee -a $S
    say "[$SECONDS s] throughput $m"
  done
  profile_d48 $R/prof_d48
  say "[$SECONDS s] profile"
elif [ "$part" = 2 ]; then
  DEADLINE=480 bash bench/memory_table.sh $R/table "$cap" "2 1 16 24 32 40" "2 0 16 24 32 40"
  cat $R/table/rows.txt >> $S
else  # FP8 backward options and kernels, CUDA graphs (reduce-overhead) against the default, the missing B=8 rows
  timeout 200 python3 bench/kernels_gpu_check.py --checks fp8_linear --reps 5 --profile-fp8 --out $R/fp8.json \
      > $R/fp8.txt 2>&1
  grep -E '"variant": "(bf16|fp8) compiled' $R/fp8.txt | cut -c1-400 | tee -a $S
  say "[$SECONDS s] fp8 variants"
  for m in d48 d12; do
    timeout 180 python3 bench/throughput.py --paths fast -e $m --steps 8 --warmup 3 --out $R/tp_${m}_graphs.json \
        --keep-logs $R/logs_${m}_graphs -- --compile-mode reduce-overhead 2>&1 | tail -1 | tee -a $S
    say "[$SECONDS s] throughput $m reduce-overhead"
  done
  DEADLINE=480 bash bench/memory_table.sh $R/table "$cap" "1 1 8" "3 1 8" "1 0 8" "3 0 8"
  cat $R/table/rows.txt >> $S
fi
tar czf $OUT/round16_$part.tgz -C $R .
say "[$SECONDS s] done"
