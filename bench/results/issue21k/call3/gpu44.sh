# issue 21, eleventh session, call 3 (2026-12-03): the GELU passes' launch configs swept (register pressure: the
# first ran at 0.9-1.6 TB/s); d12 and d48 with the best against --fp8-gelu-cast 0; if d12 gains >1%, the loss check
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; shift; T "$name"; timeout 80 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 70 --out $OUT/tmp.json "$@" >>$L 2>&1; cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\", \"tile\": \"$G2T_GELU_TILE\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T sweep; PYTHONPATH=$PWD/src timeout 100 python3 .carry/exp/gelu_sweep.py $OUT/sweep.json >$OUT/sweep.txt 2>&1; tail -3 $OUT/sweep.txt >>$L
TILE=$(tail -1 $OUT/sweep.txt | grep -E '^[0-9]+,[0-9]+,[0-9]+,[0-9]+$'); T "best $TILE"
export PYTHONPATH=$PWD/.carry/site G2T_GELU_TILE=${TILE:-64,128,8,0}
TP d12_fused -e d12
TP d12_unfused -e d12 -- --fp8-gelu-cast 0
TP d48_fused -e d48
TP d48_unfused -e d48 -- --fp8-gelu-cast 0
python3 - $OUT/tp_all.jsonl > $OUT/verdict.txt <<'PY'
import json, sys
s = open(sys.argv[1]).read(); d = json.JSONDecoder(); i = 0; runs = []; names = []
while True:
    while i < len(s) and s[i].isspace(): i += 1
    if i >= len(s): break
    o, i = d.raw_decode(s, i)
    if "runs" in o: runs.append(o["runs"][0]["ms_per_step"] or 1e9)
    else: names.append(o["name"])
ms = dict(zip(names, runs)); print(ms)
print("loss" if ms.get("d12_fused", 1e9) < 0.99 * ms.get("d12_unfused", 0) else "skip")
PY
cat $OUT/verdict.txt >>$L
if grep -q '^loss' $OUT/verdict.txt; then
  T loss; timeout 360 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline --timeout 100 --out $OUT/loss.json -- --fp8 -1 --fp8-classifier -1 --fp8-gelu-cast -1 >>$L 2>&1
fi
T done
