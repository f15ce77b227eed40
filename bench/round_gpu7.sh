#!/usr/bin/env bash
# Device call (issue 10), second of two, on the machine the first one left warm: the remaining levers alone,
# against the classic target measured by round_gpu6.sh (carried in .carry/time_to_loss_a.json).
source bench/device_env.sh
timeout 575 python3 bench/time_to_loss.py -o $R/time_to_loss_b.json --budget-s 470 \
    --target-from .carry/time_to_loss_a.json --variants "${VARIANTS:-classic+softcap,classic+wsd}" \
    > $R/time_to_loss_b.log 2>&1; tail -14 $R/time_to_loss_b.log; echo "[$SECONDS s]"
tar czf $OUT/results.tar.gz -C /tmp results
