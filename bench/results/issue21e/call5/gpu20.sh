# session 2026-12-03, call 5: blocks recomputed whole keep bf16 linears under --fp8 (their compiled recompute kept
# FP8's copies, call 4); d48 B=40 -r 2 --recompute-whole -1 --fp8 1 under the 80,300 MiB cap again
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I=".carry/corpus/corpus_train_*.bin"; J=".carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L; git diff --stat >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
T capped_fp8; timeout 150 python3 -m bench capped --mib 80300 -- train -i "$I" -j "$J" -e d48 -b 40 -t 1024 -d 40960 -r 2 --recompute-whole -1 --fp8 1 -x 6 -v 0 -s 0 --no-tensorboard >>$L 2>&1
T done
