# issue 21, nineteenth session, call 3: the working tree's default path: the 200-step loss check (two runs beside two
# bf16 runs), start-up cold and warm at d12 and d48, and a d12 profile
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi -L >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
T loss_check; timeout 330 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline --timeout 150 --out $OUT/loss.json -- --fp8 -1 --fp8-classifier -1 >>$L 2>&1
T profile; timeout 90 python3 -m bench profile --out $OUT/p --steps 2 -- -i "$I" -j "$J" -e d12 -b 64 -t 1024 -d 524288 -r 0 >>$L 2>&1
T startup; timeout 240 python3 -m bench startup -i "$I" -j "$J" -e d12 d48 --warm 1 --out $OUT/startup.json >>$L 2>&1
cp .carry/gpu79.sh $OUT/
T done
