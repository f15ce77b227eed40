#!/usr/bin/env bash
# Device call (issue 4), round 19, on nvidia-h200-x2 (no H100 lent): time to first step, cold and then warm (the
# compile cache the first run left), at d48 on GPU 0 and d12 on GPU 1, after the fresh model stopped paying for
# PyTorch's default initialisation (made on the meta device) and each weight got its own parallel draw.
# Usage: bench/round_gpu19.sh. Lines go to $OUT/summary.txt; logs to $OUT/round19.tgz.
source bench/device_env.sh
export TP_TIMEOUT=150
( throughput 0 d48_cold d48; throughput 0 d48_warm d48 ) &
( throughput 1 d12_cold d12; throughput 1 d12_warm d12 ) &
wait
tar czf $OUT/round19.tgz -C $R .
say "[$SECONDS s] done"
