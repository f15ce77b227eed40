# session 2026-12-02b, call 2: throughput in one sitting (bf16 default and --fp8 1, d12 B=64 and d48 B=16),
# a d12 B=64 profile, and a cProfile of d48's warm start (our functions and the top by own time)
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I=".carry/corpus/corpus_train_*.bin"; J=".carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version --format=csv >>$L; git log --oneline -1 >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
T tp_bf16; timeout 150 python3 -m bench throughput -i "$I" -j "$J" -e d12 d48 --paths fast --steps 8 --timeout 70 --out $OUT/tp_bf16.json >>$L 2>&1
T tp_fp8_1; timeout 170 python3 -m bench throughput -i "$I" -j "$J" -e d12 d48 --paths fast --steps 8 --timeout 80 --out $OUT/tp_fp8_1.json -- --fp8 1 >>$L 2>&1
T prof_d12; timeout 120 python3 -m bench profile --out /tmp/prof_d12 --steps 2 -- -i "$I" -j "$J" -e d12 -b 64 -t 1024 -d 524288 -r 0 >>$L 2>&1; cp /tmp/prof_d12/profile.txt $OUT/prof_d12.txt
T cprofile_d48
PYTHONPATH=$PWD/src timeout 90 python3 -m cProfile -o /tmp/w.prof -m gpt2train train -i "$I" -j "$J" -e d48 -b 16 -t 1024 -d 65536 -r 0 -x 1 -v 0 -s 0 --no-tensorboard >>$L 2>&1
python3 -c "import pstats; s=pstats.Stats('/tmp/w.prof'); s.sort_stats('cumulative').print_stats('gpt2train', 60); s.sort_stats('tottime').print_stats(40)" > $OUT/warm_d48.txt 2>&1
T done
