#!/usr/bin/env bash
# Device call (issue 4): kernel profiles of d12/d48 steps and d12 fast-path variants. Results: $OUT/results.tar.gz
source bench/device_env.sh
timeout 120 python3 bench/profile_step.py --out $R/prof_d12 -- "${DATA[@]}" -e d12 -b 64 -t 1024 -d 524288 -r 0 -s 0 \
    > $R/prof_d12.log 2>&1; head -40 $R/prof_d12.log; echo "[$SECONDS s]"
tp() { name=$1; shift; timeout 150 python3 bench/throughput.py --paths fast --steps 10 --warmup 3 --out $R/tp_$name.json \
    --keep-logs $R/logs_$name "$@" 2>&1 | tail -2; echo "[$SECONDS s]"; }
tp d12_default -e d12
tp d12_cudnn -e d12 -- --attention cudnn
tp d12_flash -e d12 -- --attention flash
tp d12_chunk16k -e d12 -- --classifier-chunk 16384
tp d12_chunkall -e d12 -- --classifier-chunk 0
tp d12_model -e d12 -- --compile-scope model
timeout 150 python3 bench/profile_step.py --out $R/prof_d48 -- "${DATA[@]}" -e d48 -b 16 -t 1024 -d 65536 -r 0 -s 0 \
    > $R/prof_d48.log 2>&1; head -30 $R/prof_d48.log; echo "[$SECONDS s]"
tar czf $OUT/results.tar.gz -C /tmp results
