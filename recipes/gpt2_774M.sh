#!/usr/bin/env bash
# GPT-2 774M (d36) on FineWeb-Edu 100B, llm.c's run_gpt2_774M.sh hyperparameters (B=32, lr 2.5e-4).
# Data: gpt2train prepare fineweb-edu --tokens 100B -o data/edu_fineweb100B
# Plan (gpt2train plan -e d36 -x 286102 -d 1048576 --gpus 8 --gpu h100): 110 h and $3,092 at 47% MFU.
set -euo pipefail
NGPU=${NGPU:-8}
torchrun --standalone --nproc_per_node="$NGPU" -m gpt2train train \
    -i "data/edu_fineweb100B/edu_fineweb_train_*.bin" -j "data/edu_fineweb100B/edu_fineweb_val_*.bin" \
    -o log774M -v 250 -s 300000 -g 144 -h 1 -b 32 -t 1024 -d 1048576 -r 0 -z 1 -c 0.1 -l 0.00025 -q 0.0 -u 700 \
    -n 4000 -y 1 -x 286102 -e d36 "$@"
