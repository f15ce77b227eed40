#!/usr/bin/env bash
# Device call (issues 7 and 10): GPU determinism with --deterministic 0/1, then the time-to-loss benchmark.
source bench/device_env.sh
timeout 250 python3 bench/determinism_gpu.py --out $R/determinism -i .carry/corpus/corpus_train_000001.bin \
    -j .carry/corpus/corpus_val_000000.bin > $R/determinism.log 2>&1; tail -15 $R/determinism.log; echo "[$SECONDS s]"
timeout $((560 - SECONDS)) python3 bench/time_to_loss.py --train .carry/corpus/corpus_train_000001.bin \
    --val .carry/corpus/corpus_val_000000.bin -o $R/time_to_loss.json --budget-s $((440 - SECONDS)) \
    > $R/time_to_loss.log 2>&1; tail -25 $R/time_to_loss.log; echo "[$SECONDS s]"
tar czf $OUT/results.tar.gz -C /tmp results
