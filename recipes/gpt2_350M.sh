#!/usr/bin/env bash
# GPT-2 350M (d24) on FineWeb-Edu 100B, llm.c's run_gpt2_350M.sh hyperparameters (lr 3e-4, 60K steps).
# Data: gpt2train prepare fineweb-edu --tokens 100B -o data/edu_fineweb100B
# Plan (gpt2train plan -e d24 -x 60000 -d 524288 --gpus 8 --gpu h100): 5.4 h and $150 at 47% MFU.
set -euo pipefail
NGPU=${NGPU:-8}
torchrun --standalone --nproc_per_node="$NGPU" -m gpt2train train \
    -i "data/edu_fineweb100B/edu_fineweb_train_*.bin" -j "data/edu_fineweb100B/edu_fineweb_val_*.bin" \
    -o log350M -v 250 -s 100000 -g 144 -h 1 -b 64 -t 1024 -d 524288 -r 0 -z 1 -c 0.1 -l 0.0003 -q 0.0 -u 700 \
    -n 5000 -y 1 -x 60000 -e d24 "$@"
