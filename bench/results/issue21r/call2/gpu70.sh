# issue 21, eighteenth session, call 2: GELU inside cuBLASLt's FP8 epilogues against the cast kernel's GELU passes
# (d12's MLP), and d12 trained under CUDA graphs with evaluation, HellaSwag, sampling and a checkpoint between steps
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L; git status --short >>$L; nvidia-smi -L >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
T headers; find / -name "cublasLt.h" 2>/dev/null | head -3 >>$L; H=$(find / -name "cublasLt.h" 2>/dev/null | head -1); [ -n "$H" ] && grep -nE "CUBLASLT_MATMUL_DESC_(A_SCALE_POINTER|B_SCALE_POINTER|D_SCALE_POINTER|AMAX_D_POINTER|EPILOGUE_AUX_DATA_TYPE|FAST_ACCUM|BIAS_DATA_TYPE) *=" $H >>$L; R=$(find / -name "library_types.h" 2>/dev/null | head -1); [ -n "$R" ] && grep -nE "CUDA_R_8F_E(4M3|5M2) *=" $R >>$L
T fp8_epilogue; timeout 150 env PYTHONPATH=$PWD/src OUT=$OUT python3 .carry/fp8_epilogue.py >>$L 2>&1
T graphs_run; timeout 200 python3 -m gpt2train train -i "$I" -j "$J" -o $OUT/run_graphs -e d12 -b 16 -t 1024 -d 65536 -x 24 -v 8 -m 4 -s 12 -g 32 -h 1 --hellaswag-file $PWD/.carry/hellaswag_val.jsonl -n 12 --compile-mode reduce-overhead --fp8-classifier 4 --no-tensorboard >>$L 2>&1; echo "rc=$?" >>$L
T done
