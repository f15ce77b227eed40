#!/usr/bin/env bash
# Device call (issue 4), round 18, on nvidia-h200-x2 (no H100 lent). GPU 0: d48 and d12 with --fp8 2 (FP8 with
# the gradient matmuls in fast accumulation; round 16's kernel check: d48 c_fc 1.96 ms against FP8's 2.77 and
# bf16's 2.02), d48 with --fp8 1 and in bf16 on the same machine. GPU 1: 300 steps of d12 with --fp8 2 (round 12-13's
# curve settings: the loss gap), then CUDA graphs (--compile-mode reduce-overhead, each forward a new graph step)
# at d12, and at d48 if d12 ran. Usage: bench/round_gpu18.sh. Lines go to $OUT/summary.txt; logs to $OUT/round18.tgz.
source bench/device_env.sh
export TP_TIMEOUT=170
( throughput 0 d48_fp8_2 d48 --fp8 2
  throughput 0 d48_fp8_1 d48 --fp8 1
  throughput 0 d48_bf16 d48
  throughput 0 d12_fp8_2 d12 --fp8 2
  say "[$SECONDS s] gpu 0 done" ) &
( CUDA_VISIBLE_DEVICES=1 timeout 170 python3 -m gpt2train train "${DATA[@]}" -o $R/curve_fp8_2 -e d12 -b 16 -t 1024 \
      -d 65536 -x 300 -v 50 -m 20 -s 0 -l 6e-4 -u 30 -q 0.1 -c 0.1 --fp8 2 > $R/curve_fp8_2.txt 2>&1
  say "[$SECONDS s] curve --fp8 2 rc=$?"; grep tel $R/curve_fp8_2/main.log | tee -a $S
  grep -E "^step +300/" $R/curve_fp8_2.txt | cut -c1-150 | tee -a $S
  rm -f $R/curve_fp8_2/*.bin $R/curve_fp8_2/*.safetensors
  throughput 1 d12_graphs d12 --compile-mode reduce-overhead
  grep -q '"ok": true' $R/tp_d12_graphs.json && throughput 1 d48_graphs d48 --compile-mode reduce-overhead
  say "[$SECONDS s] gpu 1 done" ) &
wait
for f in $R/logs_*/*.txt; do grep -m3 -B2 -A25 "Traceback\|Error" "$f" > "$f.err" 2>/dev/null || rm -f "$f.err"; done
tar czf $OUT/round18.tgz -C $R .
say "[$SECONDS s] done"
