#!/usr/bin/env bash
# GPT-2 1558M (d48): the seed's command, 32,000 steps of 1,048,576 FineWeb-Edu tokens on one 8-GPU node.
# Data: gpt2train prepare fineweb-edu --tokens 100B -o data/edu_fineweb100B
# Plan (gpt2train plan -e d48 -x 32000 -d 1048576 --gpus 8 --gpu h100): 24.6 h and $689 at 47% MFU and
# $3.5 per GPU-hour (llm.c: 24 h, $672). Measured on 4 GPUs: BENCHMARKS.md, "The seed's run on 4 GPUs".
set -euo pipefail
NGPU=${NGPU:-8}
torchrun --standalone --nproc_per_node="$NGPU" -m gpt2train train \
    -i "data/edu_fineweb100B/edu_fineweb_train_*.bin" -j "data/edu_fineweb100B/edu_fineweb_val_*.bin" \
    -o log1558M -v 250 -s 300000 -g 384 -h 1 -b 16 -t 1024 -d 1048576 -r 0 -z 1 -c 0.1 -k cosine -l 0.0006 \
    -q 0.1 -u 700 -n 2000 -x 32000 -ge 1 -y 1 -e d48 "$@"
