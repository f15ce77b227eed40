#!/usr/bin/env bash
# Device call (nvidia-h100-x1): d48 eval/generation speed, -b auto at d48, GPU kill-and-resume check (d12).
set -uo pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:src
DATA=(-i ".carry/corpus/corpus_train_*.bin" -j ".carry/corpus/corpus_val_*.bin")
R=(-e d12 -b 8 -t 1024 -x 6 -v 3 -m 2 -s 0 -n 3 -l 6e-4)
python3 -m gpt2train train "${DATA[@]}" "${R[@]}" -o "$OUT/det_ref" > "$OUT/det_ref.txt" 2>&1
GPT2TRAIN_INJECT=exit@4 python3 -m gpt2train train "${DATA[@]}" "${R[@]}" -o "$OUT/det_kill" -y 1 > "$OUT/det_kill1.txt" 2>&1
python3 -m gpt2train train "${DATA[@]}" "${R[@]}" -o "$OUT/det_kill" -y 1 > "$OUT/det_kill2.txt" 2>&1
if cmp -s "$OUT/det_ref/main.log" "$OUT/det_kill/main.log"; then echo "GPU resume: main.log identical"; else
  echo "GPU resume: main.log differs"; paste "$OUT/det_ref/main.log" "$OUT/det_kill/main.log"; fi
rm -f "$OUT"/det_*/*.bin "$OUT"/det_*/*.safetensors
timeout 200 python3 bench/eval_speed.py --hellaswag .carry/hellaswag_val_all.jsonl --model d48 --dtype bf16 \
    --gen-tokens 128 --out "$OUT/eval_speed_d48.json" 2>&1 | tail -6
mkdir -p "$OUT/d48_auto"
timeout 200 python3 -m gpt2train train "${DATA[@]}" -e d48 -b auto -t 1024 -d 393216 -x 2 -v 100 -m 1 -s 0 -r 2 -w 0 \
    > "$OUT/d48_auto/stdout.txt" 2>&1; grep -E "auto|^step +2/|peak GPU|error" "$OUT/d48_auto/stdout.txt"
