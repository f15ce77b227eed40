#!/usr/bin/env bash
# Device call (issue 4), prepared for the next session: where the default d48 step's idle time sits (a 2-step
# profile: gaps between steps, before the first kernel and after the last), where --fp8 1's d48 step goes, and
# the warm time to first step (the same d12 command twice; the second start reads the compile cache).
source bench/device_env.sh
R=$OUT
timeout 120 python3 bench/profile_step.py --out $R/prof_d48 --steps 2 -- "${DATA[@]}" -e d48 -b 16 -t 1024 -d 65536 \
    -r 0 > $R/prof_d48.log 2>&1; head -20 $R/prof_d48/profile.txt; tail -11 $R/prof_d48/profile.txt; echo "[$SECONDS s]"
timeout 120 python3 bench/profile_step.py --out $R/prof_d48_fp8 --steps 2 -- "${DATA[@]}" -e d48 -b 16 -t 1024 \
    -d 65536 -r 0 --fp8 1 > $R/prof_d48_fp8.log 2>&1; head -30 $R/prof_d48_fp8/profile.txt; echo "[$SECONDS s]"
for i in 1 2; do
  timeout 90 python3 -m gpt2train train "${DATA[@]}" -e d12 -b 64 -t 1024 -d 524288 -x 2 -v 100 -s 0 -r 0 \
      > $R/d12_start$i.txt 2>&1; grep "time to first step" $R/d12_start$i.txt; echo "[$SECONDS s]"
done
