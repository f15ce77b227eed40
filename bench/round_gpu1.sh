#!/usr/bin/env bash
# Device call: kernels check, d12/d48 throughput variants, HellaSwag + generation speed. Results under $OUT.
source bench/device_env.sh
timeout 200 python3 bench/kernels_gpu_check.py --out "$OUT/kernels.json" --reps 10 > "$OUT/kernels.txt" 2>&1; tail -25 "$OUT/kernels.txt"
D12="-e d12 -b 64 -t 1024 -d 524288 -x 8 -v 100 -m 1 -s 0 -r 0 -l 6e-4"
bench/train_run.sh d12_b64_r0_blocks $D12
bench/train_run.sh d12_b64_r0_blocks_warm $D12
bench/train_run.sh d12_b64_r0_cudnn $D12 --attention cudnn
bench/train_run.sh d12_b64_r1 -e d12 -b 64 -t 1024 -d 524288 -x 8 -v 100 -m 1 -s 0 -r 1 -l 6e-4
bench/train_run.sh d48_b16_r0 -e d48 -b 16 -t 1024 -d 65536 -x 6 -v 100 -m 1 -s 0 -r 0 -l 6e-4
timeout 120 python3 bench/eval_speed.py --hellaswag .carry/hellaswag_val_all.jsonl --model d12 --dtype bf16 --out "$OUT/eval_speed.json" 2>&1 | tail -12
