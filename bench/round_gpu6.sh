#!/usr/bin/env bash
# Device call (issue 10), first of two: the soft-capped classifier kernel on the GPU, then the time-to-loss
# benchmark's classic target, modern (with the fused soft-cap) and the first levers alone.
source bench/device_env.sh
timeout 90 python3 bench/kernels_gpu_check.py --out $R/kernels_softcap.json --checks classifier --softcap 15 \
    --reps 3 > $R/kernels_softcap.txt 2>&1; tail -12 $R/kernels_softcap.txt; echo "[$SECONDS s]"
timeout $((575 - SECONDS)) python3 bench/time_to_loss.py -o $R/time_to_loss_a.json --budget-s $((440 - SECONDS)) \
    --variants modern,classic+qk_norm,classic+relu2,classic+rmsnorm,classic+zero_init,classic+untied \
    > $R/time_to_loss_a.log 2>&1; tail -14 $R/time_to_loss_a.log; echo "[$SECONDS s]"
cp $R/time_to_loss_a.json $OUT/ 2>/dev/null
tar czf $OUT/results.tar.gz -C /tmp results
