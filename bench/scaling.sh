#!/usr/bin/env bash
# Device call (nvidia-h100-x4): tok/s on 1, 2 and 4 GPUs of one machine, ZeRO-1, real text; then the seed
# command on 4 GPUs (issue 9). Usage: bench/scaling.sh [d12|d48|zero|seed|curves]...
set -uo pipefail
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:src
DATA=(-i ".carry/corpus/corpus_train_*.bin" -j ".carry/corpus/corpus_val_*.bin")
one() {  # one NAME NGPU FLAGS...
  local name=$1 n=$2; shift 2; local out="$OUT/$name"; mkdir -p "$out"; SECONDS=0
  torchrun --standalone --nproc_per_node="$n" -m gpt2train train "${DATA[@]}" -o "$out/run" "$@" > "$out/stdout.txt" 2>&1
  echo "== $name ($n GPU, rc $?, ${SECONDS}s)"; grep -E "^(step +[0-9]+/|time to first|peak GPU|HellaSwag|val loss|error)" "$out/stdout.txt" | tail -4
  nvidia-smi --query-gpu=memory.used --format=csv,noheader | head -1
}
for what in "$@"; do case $what in
  d12) for n in 1 2 4; do one "d12_${n}gpu" $n -e d12 -b 64 -t 1024 -d 524288 -x 8 -v 100 -m 1 -s 0 -r 0 -z 1 -l 6e-4; done ;;
  d48) for n in 1 2 4; do one "d48_${n}gpu" $n -e d48 -b 16 -t 1024 -d $((65536 * n)) -x 6 -v 100 -m 1 -s 0 -r 0 -z 1 -l 6e-4; done ;;
  zero) # issue 5: d48 weak scaling under -z 1 (train/zero.py), gradients averaged in fp32 vs bf16; ~8 min on 4 GPUs
    # (one GPU averages nothing: the bf16 series shares the fp32 series' 1-GPU run as its baseline)
    for run in fp32:1 fp32:2 bf16:2 fp32:4 bf16:4; do dt=${run%:*} n=${run#*:}
      one "zero_${dt}_${n}gpu" $n -e d48 -b 16 -t 1024 -d $((65536 * n)) -x 6 -v 100 -m 1 -s 0 -r 0 -z 1 -l 6e-4 \
        --grad-reduce-dtype $dt
    done
    python3 bench/scaling_summary.py "$OUT" zero_fp32 zero_bf16:zero_fp32 | tee "$OUT/zero_summary.txt" ;;
  seed) one seed_4gpu 4 -v 250 -s 300000 -g 384 -h 1 --hellaswag-file .carry/hellaswag_val_all.jsonl -b 16 -t 1024 \
          -d 1048576 -r 0 -z 1 -c 0.1 -k cosine -l 0.0006 -q 0.1 -u 700 -n 2000 -x 30 -ge 1 -y 1 -e d48 ;;
  curves) # 300 steps of d12, fast path on GPU 0 and plain path on GPU 1 at once (issue 4's loss check)
    for v in fast plain; do
      flag=""; gpu=0; [ $v = plain ] && flag=--plain && gpu=1
      CUDA_VISIBLE_DEVICES=$gpu python3 -m gpt2train train "${DATA[@]}" -o "$OUT/curve_$v" -e d12 -b 16 -t 1024 \
        -d 65536 -x 300 -v 50 -m 20 -s 0 -l 6e-4 -u 30 -q 0.1 -c 0.1 $flag > "$OUT/curve_$v.txt" 2>&1 &
    done; wait; grep -h "tel" "$OUT"/curve_*/main.log | head -0; paste "$OUT/curve_fast/main.log" "$OUT/curve_plain/main.log" | grep tel ;;
esac; done
