#!/usr/bin/env bash
# Device call (nvidia-h100-x1): d48 peak memory and tok/s for several B, -r and -w (issue 4) and -b auto.
# Results under $OUT. (The GPU resume check is in bench/final_checks.sh.)
set -uo pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:src
DATA=(-i ".carry/corpus/corpus_train_*.bin" -j ".carry/corpus/corpus_val_*.bin")
mem() {  # mem B R W
  local name="d48_b$1_r$2_w$3" out="$OUT/d48_b$1_r$2_w$3"; mkdir -p "$out"
  python3 -m gpt2train train "${DATA[@]}" -e d48 -b "$1" -t 1024 -d $((2 * $1 * 1024)) -x 3 -v 100 -m 1 -s 0 \
      -r "$2" -w "$3" -l 6e-4 > "$out/stdout.txt" 2>&1
  local rc=$? tok peak
  tok=$(grep -E "^step +3/3" "$out/stdout.txt" | grep -oE "[0-9]+ tok/s")
  peak=$(grep -E "^peak GPU" "$out/stdout.txt")
  grep -q "OutOfMemory\|out of memory" "$out/stdout.txt" && peak="out of memory"
  echo "$name rc=$rc | $tok | $peak"
}
for cfg in "16 0 1" "24 0 1" "24 1 1" "32 2 1" "40 2 1" "16 0 0" "24 0 0" "32 1 0" "40 2 0" "48 2 0"; do mem $cfg; done
out="$OUT/d48_auto"; mkdir -p "$out"
python3 -m gpt2train train "${DATA[@]}" -e d48 -b auto -t 1024 -d 393216 -x 2 -v 100 -m 1 -s 0 -r 2 -w 0 > "$out/stdout.txt" 2>&1
grep -E "auto|^step +2/|peak GPU|error" "$out/stdout.txt"
