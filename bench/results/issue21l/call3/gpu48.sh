# issue 21, twelfth session, call 3 (2026-12-03): start-up cold and warm of the defaults (d12, d48); a profile of
# d12's default step; the capped d48 B=40; d12 default against CUDA graphs once more
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 80 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 70 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T startup; timeout 240 python3 -m bench startup -i "$I" -j "$J" -e d12 d48 --warm 2 --timeout 70 --out $OUT/startup.json --keep-logs $OUT/startup_logs >>$L 2>&1
T profile; timeout 100 python3 -m bench profile --out $OUT/prof_d12 --steps 2 -- -i "$I" -j "$J" -e d12 -b 64 -t 1024 -d 524288 -r 0 >>$L 2>&1
T capped; timeout 120 python3 -m bench capped --mib 80300 -- train -i "$I" -j "$J" -o $OUT/capped_run -e d48 -b 40 -t 1024 -d 40960 -r 2 --recompute-whole -1 -x 4 -v 0 -s 0 >$OUT/capped.txt 2>&1; echo "rc=$?" >>$OUT/capped.txt
TP d12_graphs -e d12 -- --compile-mode reduce-overhead
TP d12_default -e d12
T done
