#!/usr/bin/env bash
# GPT-2 124M (d12) on FineWeb-Edu 10B, llm.c's scripts/run_gpt2_124M.sh hyperparameters.
# Data: gpt2train prepare fineweb-edu --tokens 10B -o data/edu_fineweb10B
# Plan (gpt2train plan -e d12 -x 18865 -d 524288 --gpus 8 --gpu h100): 0.6 h and $17 on 8 H100s at 47% MFU.
set -euo pipefail
NGPU=${NGPU:-8}
torchrun --standalone --nproc_per_node="$NGPU" -m gpt2train train \
    -i "data/edu_fineweb10B/edu_fineweb_train_*.bin" -j "data/edu_fineweb10B/edu_fineweb_val_*.bin" \
    -o log124M -v 250 -s 20000 -g 144 -h 1 -b 64 -t 1024 -d 524288 -r 0 -z 1 -c 0.1 -l 0.0006 -q 0.0 -u 700 \
    -n 5000 -y 1 -x 18865 -e d12 "$@"
