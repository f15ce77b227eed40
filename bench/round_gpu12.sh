#!/usr/bin/env bash
# Device call (issue 4): the same loss with the new defaults (300 steps of d12, fast path vs --plain, one after the
# other on one GPU), then d48 peak memory and tok/s by B and -r with --bf16-params 1 (the default) and -w 1.
source bench/device_env.sh
for v in fast plain; do
  flag=""; [ $v = plain ] && flag=--plain
  timeout 200 python3 -m gpt2train train "${DATA[@]}" -o $R/curve_$v -e d12 -b 16 -t 1024 -d 65536 -x 300 -v 50 \
      -m 20 -s 0 -l 6e-4 -u 30 -q 0.1 -c 0.1 $flag > $R/curve_$v.txt 2>&1
  echo "[$SECONDS s] curve $v rc=$?"; grep -E "master in the opt|peak GPU" $R/curve_$v.txt | head -2
done
paste $R/curve_fast/main.log $R/curve_plain/main.log | grep tel
rm -f $R/curve_*/*.bin $R/curve_*/*.safetensors
mem() {  # mem B R
  local out=$R/d48_b$1_r$2; mkdir -p $out
  timeout $((590 - SECONDS)) python3 -m gpt2train train "${DATA[@]}" -e d48 -b $1 -t 1024 -d $((2 * $1 * 1024)) -x 3 \
      -v 100 -m 1 -s 0 -r $2 -l 6e-4 > $out/stdout.txt 2>&1
  local rc=$? tok peak
  tok=$(grep -E "^step +3/3" $out/stdout.txt | grep -oE "[0-9]+ tok/s")
  peak=$(grep -E "^peak GPU" $out/stdout.txt)
  grep -q "OutOfMemory\|out of memory" $out/stdout.txt && peak="out of memory"
  echo "[$SECONDS s] d48 B=$1 -r $2 rc=$rc | $tok | $peak"
}
for cfg in "24 0" "24 1" "32 1" "32 2" "40 2" "48 2"; do mem $cfg; [ $SECONDS -gt 520 ] && break; done
tar czf $OUT/results.tar.gz -C /tmp results
