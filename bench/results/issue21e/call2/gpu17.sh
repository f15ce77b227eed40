# session 2026-12-03, call 2: the landed code (--fp8-grad e4m3 default, --fp8 -1 auto: FP8 for d36/d48 at -r 0/1 on
# Hopper). d48 B=16 default (cold, the machine's first process) and bf16 (--fp8 0); d12 default (bf16 by the rule)
# and --fp8 1; d48 default again (warm); d48 B=40 -r 2 --recompute-whole -1 --fp8 1 under the 80,300 MiB cap; the
# loss check of --fp8 1 as landed (third sitting, two runs each)
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I=".carry/corpus/corpus_train_*.bin"; J=".carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; t=$2; shift 2; T "$name"; timeout $t python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 100 --keep-logs $OUT/logs_$name --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
TP d48_default 60 -e d48
TP d48_bf16 50 -e d48 -- --fp8 0
TP d12_default 45 -e d12
TP d12_fp8 45 -e d12 -- --fp8 1
TP d48_default_warm 45 -e d48
T capped_fp8; timeout 110 python3 -m bench capped --mib 80300 -- train -i "$I" -j "$J" -e d48 -b 40 -t 1024 -d 40960 -r 2 --recompute-whole -1 --fp8 1 -x 4 -v 0 -s 0 --no-tensorboard >>$L 2>&1
T loss; timeout 300 python3 -m bench loss-check -i "$I" -j "$J" --timeout 100 --runs 2 --baseline --out $OUT/loss_fp8.json -- --fp8 1 >>$L 2>&1
T done
