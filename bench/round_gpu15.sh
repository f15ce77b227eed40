#!/usr/bin/env bash
# Device call (issue 4), round 15, on nvidia-h200-x2 (no H100 lent on 2026-11-28): the d48 memory table by B,
# -r and -w with today's defaults, each GPU of the pair taking one queue, and PyTorch's allocator capped at
# what an 80 GB H100 holds (bench/capped.py), so out of memory falls where it would there. Optionally a d48
# profile (bench/profile_step.py, the GPU-timeline annotations no longer counted as kernels) on GPU 1 after
# its queue. Usage: bench/round_gpu15.sh TAG "queue for GPU 0" "queue for GPU 1" [profile]
# (a queue: groups "R W B1 B2 ..." separated by ';'). Rows go to $OUT/summary.txt as they come.
source bench/device_env.sh
tag=$1 q0=$2 q1=$3 prof=${4:-}
export DEADLINE=${DEADLINE:-430}
IFS=';' read -ra g0 <<< "$q0"; IFS=';' read -ra g1 <<< "$q1"
CUDA_VISIBLE_DEVICES=0 bash bench/memory_table.sh $R/gpu0 80300 "${g0[@]}" &
( CUDA_VISIBLE_DEVICES=1 bash bench/memory_table.sh $R/gpu1 80300 "${g1[@]}"
  if [ -n "$prof" ] && [ "$SECONDS" -lt 420 ]; then
    CUDA_VISIBLE_DEVICES=1 profile_d48 $R/prof_d48
  fi ) &
while [ -n "$(jobs -r)" ]; do
  sleep 15; cat $R/gpu*/rows.txt > $OUT/rows.txt 2>/dev/null
done
cat $R/gpu*/rows.txt >> $S
rm -f $OUT/rows.txt
tar czf $OUT/round15_$tag.tgz -C $R .
echo "[$SECONDS s] done" >> $S
