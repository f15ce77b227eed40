#!/usr/bin/env bash
# Device call (issue 4): FP8 matmuls (--fp8 1) -- the kernel check at the blocks' shapes, d48 tok/s against the
# default on the same machine, the fixed -r 1 at d48 B=24, 300 steps of d12 in FP8 for the loss, d12 tok/s.
# Results are written straight into $OUT (what finished comes back even if the call is cut short).
source bench/device_env.sh
R=$OUT
left() { echo $(( ${LIMIT:-430} - SECONDS )); }
timeout 90 python3 bench/kernels_gpu_check.py --checks fp8_linear --reps 5 --out $R/kernels.json > $R/kernels.txt 2>&1
grep -E "^fp8|failures|FAIL" $R/kernels.txt; echo "[$SECONDS s]"
for run in d48:1 d48:0; do
  m=${run%:*}; f=${run#*:}
  timeout 110 python3 bench/throughput.py --paths fast -e $m --steps 8 --warmup 3 --out $R/tp_${m}_fp8$f.json \
      --keep-logs $R/logs_${m}_fp8$f -- --fp8 $f 2>&1 | tail -1; echo "[$SECONDS s] $m --fp8 $f"
done
mkdir -p $R/d48_b24_r1
timeout 80 python3 -m gpt2train train "${DATA[@]}" -e d48 -b 24 -t 1024 -d 49152 -x 3 -v 100 -m 1 -s 0 -r 1 -l 6e-4 \
    > $R/d48_b24_r1/stdout.txt 2>&1; echo "[$SECONDS s] d48 B=24 -r 1 rc=$?"
grep -E "^step +3/3|^peak GPU|out of memory" $R/d48_b24_r1/stdout.txt | cut -c1-160
[ $(left) -gt 90 ] && { timeout $(( $(left) - 5 )) python3 -m gpt2train train "${DATA[@]}" -o $R/curve_fp8 -e d12 -b 16 \
    -t 1024 -d 65536 -x 300 -v 50 -m 20 -s 0 -l 6e-4 -u 30 -q 0.1 -c 0.1 --fp8 1 > $R/curve_fp8.txt 2>&1
  echo "[$SECONDS s] curve fp8 rc=$?"; grep tel $R/curve_fp8/main.log; grep -E "^step +300/" $R/curve_fp8.txt | cut -c1-150
  rm -f $R/curve_fp8/*.bin $R/curve_fp8/*.safetensors; }
for f in 1 0; do
  [ $(left) -gt 45 ] && { timeout $(( $(left) - 3 )) python3 bench/throughput.py --paths fast -e d12 --steps 8 --warmup 3 \
      --out $R/tp_d12_fp8$f.json --keep-logs $R/logs_d12_fp8$f -- --fp8 $f 2>&1 | tail -1; echo "[$SECONDS s] d12 --fp8 $f"; }
done
