#!/usr/bin/env bash
# Device call (issue 4), round 16, on nvidia-h200-x2 (no H100 lent): what round 15 left unmeasured, one queue per
# GPU. Call a: GPU 0 measures the bytes each -r level saves (bench/recompute_memory.py; -r 2 is now llm.c's
# checkpointed LayerNorms), then the d48 rows of the new -r 2 -w 1; GPU 1 the rows of -r 2 -w 0 and the B=8 rows
# at -r 1. Call b: GPU 0 the d48 and d12 fast path (bench/throughput.py, twice at d48 for the warm start), then
# CUDA graphs (--compile-mode reduce-overhead) at both; GPU 1 the FP8 linear's backward options and kernels
# against bf16's at d48 c_fc, the d48 profile with the fixed idle count, and the B=8 rows at -r 3.
# Memory rows run with the allocator capped at CAP_MIB (80300 on an H200: what an 80 GB H100 holds; 0 uncapped).
# Usage: bench/round_gpu16.sh a|b [CAP_MIB]. Lines go to $OUT/summary.txt as they come; logs to $OUT/round16_CALL.tgz.
source bench/device_env.sh
call=$1 cap=${2:-80300}
export DEADLINE=${DEADLINE:-440}
if [ "$call" = a ]; then
  ( export CUDA_VISIBLE_DEVICES=0
    timeout 150 python3 bench/recompute_memory.py --out $R/recompute.json 2>&1 | grep '^{' | tee -a $S
    say "[$SECONDS s] recompute_memory"
    DEADLINE=300 bash bench/memory_table.sh $R/gpu0 "$cap" "2 1 8 16 24 32 40" ) &
  CUDA_VISIBLE_DEVICES=1 bash bench/memory_table.sh $R/gpu1 "$cap" "2 0 8 16 24 32 40" "1 1 8" "1 0 8" &
else
  ( throughput 0 d48 d48
    throughput 0 d48_warm d48
    throughput 0 d12 d12
    say "[$SECONDS s] default compile"
    throughput 0 d48_graphs d48 --compile-mode reduce-overhead
    throughput 0 d12_graphs d12 --compile-mode reduce-overhead
    say "[$SECONDS s] reduce-overhead" ) &
  ( export CUDA_VISIBLE_DEVICES=1
    timeout 200 python3 bench/kernels_gpu_check.py --checks fp8_linear --reps 5 --profile-fp8 --out $R/fp8.json \
        > $R/fp8.txt 2>&1
    grep -E '"variant": "(bf16|fp8) compiled' $R/fp8.txt | cut -c1-400 | tee -a $S
    say "[$SECONDS s] fp8 variants"
    profile_d48 $R/prof_d48
    say "[$SECONDS s] profile"
    bash bench/memory_table.sh $R/gpu1 "$cap" "3 1 8" "3 0 8" ) &
fi
while [ -n "$(jobs -r)" ]; do
  sleep 15; cat $R/gpu*/rows.txt > $OUT/rows.txt 2>/dev/null
done
cat $R/gpu*/rows.txt >> $S 2>/dev/null
rm -f $OUT/rows.txt
tar czf $OUT/round16_$call.tgz -C $R .
say "[$SECONDS s] done"
