#!/usr/bin/env bash
# Device call (issue 10), second of two: the classic target again (so times compare on this machine), then the
# remaining levers alone and modern without some of its levers.
source bench/device_env.sh
timeout 560 python3 bench/time_to_loss.py -o $R/time_to_loss_b.json --budget-s 400 --minus \
    --variants "${VARIANTS:-classic+softcap,classic+wsd,classic+muon,classic+rotary,modern-muon,modern-relu2,modern-zero_init}" \
    > $R/time_to_loss_b.log 2>&1; tail -14 $R/time_to_loss_b.log; echo "[$SECONDS s]"
cp $R/time_to_loss_b.json $OUT/ 2>/dev/null
tar czf $OUT/results.tar.gz -C /tmp results
