#!/usr/bin/env bash
# One training run on the device machine, logged under $OUT/<name>: bench/train_run.sh NAME [train flags...]
# Data: shards of ../shared/data/corpus carried in .carry/corpus (see BENCHMARKS.md).
set -uo pipefail
name=$1; shift
out=${OUT:-/tmp/out}/$name
mkdir -p "$out"
SECONDS=0
PYTHONPATH=src:${PYTHONPATH:-} python3 -m gpt2train train -i ".carry/corpus/corpus_train_*.bin" -j ".carry/corpus/corpus_val_*.bin" \
    -o "$out/run" "$@" 2>&1 | tee "$out/stdout.txt" | grep -E "^(step +[0-9]+/|val loss|error|Traceback|num_param|done|time to first|peak GPU)" | \
    awk 'NR==1 || /val loss|error|done|time to|peak/ || /step +(1|2|5|10|20|30|50|100|200|300)\// {print}'
echo "$name: wall ${SECONDS} s"
nvidia-smi --query-gpu=memory.used --format=csv,noheader >> "$out/stdout.txt" 2>/dev/null || true
