# issue 21, call 1: start-up cold/warm with its split, throughput d12/d48 bf16 and --fp8 2, d48 profiles
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I=".carry/corpus/corpus_train_*.bin"; J=".carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; python3 -c "import torch, triton; print(torch.__version__, triton.__version__)"; date -u; } >>$L 2>&1
T() { echo "=== $* ($(date -u +%T))" >>$L; }
T cold; python3 -m bench throughput -i "$I" -j "$J" -e d12 d48 --paths fast --steps 8 --timeout 150 --out $OUT/tp_cold.json >>$L 2>&1
T warm; python3 -m bench throughput -i "$I" -j "$J" -e d12 d48 --paths fast --steps 8 --timeout 150 --out $OUT/tp_warm.json >>$L 2>&1
T fp8; python3 -m bench throughput -i "$I" -j "$J" -e d12 d48 --paths fast --steps 8 --timeout 150 --out $OUT/tp_fp8.json -- --fp8 2 >>$L 2>&1
A="-i $I -j $J -b 16 -t 1024 -d 65536 -r 0 -e d48"
T prof_bf16; python3 -m bench profile --out /tmp/pb --steps 2 -- $A >>$L 2>&1; cp /tmp/pb/profile.txt $OUT/prof_d48_bf16.txt
T prof_fp8; python3 -m bench profile --out /tmp/pf --steps 2 -- $A --fp8 2 >>$L 2>&1; cp /tmp/pf/profile.txt $OUT/prof_d48_fp8.txt
T cprofile_warm_d48; python3 -m cProfile -o /tmp/w.prof -m gpt2train train $A -x 1 -v 0 -s 0 --no-tensorboard >>$L 2>&1
python3 -c "import pstats; pstats.Stats('/tmp/w.prof').sort_stats('cumulative').print_stats(70)" > $OUT/warm_d48_cum.txt 2>&1
python3 -c "import pstats; pstats.Stats('/tmp/w.prof').sort_stats('tottime').print_stats(40)" > $OUT/warm_d48_tot.txt 2>&1
T done
