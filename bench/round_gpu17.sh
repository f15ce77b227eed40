#!/usr/bin/env bash
# Device call (issue 4), round 17, on nvidia-h200-x2 (no H100 lent). GPU 0: d48 B=40 (and 48) with
# --recompute-whole N, the first N blocks recomputed whole and the rest at -r 2, N around the planner's figure,
# allocator capped at 80,300 MiB (what an 80 GB H100 holds). GPU 1: CUDA graphs (--compile-mode reduce-overhead)
# after the cuBLASLt workspace moved out of the graph pool (round 16: "tensor(s) in the cudagraph pool not
# tracked"): d12, then d48 if d12 ran, else d12 without -ge and without --accumulate-in-matmul to find the culprit.
# Usage: bench/round_gpu17.sh. Lines go to $OUT/summary.txt as they come; logs to $OUT/round17.tgz.
source bench/device_env.sh
export DEADLINE=${DEADLINE:-400} TP_TIMEOUT=170
( export CUDA_VISIBLE_DEVICES=0
  for g in "1 7" "1 8" "0 1" "0 2"; do
    read -r w n <<< "$g"
    FLAGS="--recompute-whole $n" bash bench/memory_table.sh $R/gpu0 80300 "2 $w 40"
  done
  FLAGS="--recompute-whole 13" bash bench/memory_table.sh $R/gpu0 80300 "2 0 48" ) &
( throughput 1 d12_graphs d12 --compile-mode reduce-overhead
  if grep -q '"ok": true' $R/tp_d12_graphs.json 2>/dev/null; then
    throughput 1 d48_graphs d48 --compile-mode reduce-overhead
  else
    throughput 1 d12_graphs_ge0 d12 --compile-mode reduce-overhead -ge 0
    throughput 1 d12_graphs_ge0_acc0 d12 --compile-mode reduce-overhead -ge 0 --accumulate-in-matmul 0
  fi
  say "[$SECONDS s] reduce-overhead" ) &
while [ -n "$(jobs -r)" ]; do
  sleep 15; cat $R/gpu*/rows.txt > $OUT/rows.txt 2>/dev/null
done
cat $R/gpu*/rows.txt >> $S 2>/dev/null
rm -f $OUT/rows.txt
for f in $R/logs_*/*.txt; do grep -m3 -B2 -A25 "Traceback\|Error" "$f" > "$f.err" 2>/dev/null || rm -f "$f.err"; done
tar czf $OUT/round17.tgz -C $R .
say "[$SECONDS s] done"
