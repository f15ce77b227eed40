# issue 21, thirteenth session, call 5 (2026-12-03): the bias in the FP8 forward matmul's epilogue (a check on the GPU),
# the loss check of --fp8-classifier 1 on the default again (a second sitting; with the epilogue bias and CE's new
# tile), then d12: this tree's default, 7f135b2's (.carry/old), this tree's with --fp8-classifier 1
unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=/tmp/pyc PYTHONUNBUFFERED=1
I="$PWD/.carry/corpus/corpus_train_*.bin"; J="$PWD/.carry/corpus/corpus_val_*.bin"
L=$OUT/log.txt; date -u >>$L; git log --oneline -1 >>$L; git status --short >>$L
T() { echo "=== $* ($(date -u +%T))" >>$L; }
TP() { name=$1; dir=$2; shift 2; T "$name"; (cd $dir && timeout 45 python3 -m bench throughput -i "$I" -j "$J" --paths fast --steps 8 --timeout 40 --out $OUT/tmp.json "$@" >>$L 2>&1); cat $OUT/tmp.json >> $OUT/tp_all.jsonl 2>/dev/null; echo "{\"name\": \"$name\"}" >> $OUT/tp_all.jsonl; rm -f $OUT/tmp.json; }
T bias_check; PYTHONPATH=$PWD/src timeout 30 python3 -c "
import torch; from gpt2train.kernels import fp8_linear as f8
g=torch.Generator(device='cuda').manual_seed(0)
x=torch.randn(4096,768,device='cuda',generator=g).mul(8).to(f8.E4M3); w=torch.randn(2304,768,device='cuda',generator=g).mul(8).to(f8.E4M3)
sx,sw=torch.tensor(0.03,device='cuda'),torch.tensor(0.02,device='cuda'); b=torch.randn(2304,device='cuda',generator=g).mul(3).bfloat16()
got=f8.forward_matmul(x,sx,w,sw,b,torch.bfloat16); ref=((x.float()@w.float().t())*(sx*sw)+b.float())
print('bias epilogue: max |got-ref|', (got.float()-ref).abs().max().item(), 'ref max', ref.abs().max().item(), 'rel', ((got.float()-ref).norm()/ref.norm()).item())
" >>$L 2>&1
T loss_check; timeout 285 python3 -m bench loss-check -i "$I" -j "$J" --runs 2 --baseline --timeout 100 --out $OUT/loss.json -- --fp8 -1 --fp8-gelu-cast -1 --fp8-classifier 1 >>$L 2>&1
TP d12_new $PWD -e d12
TP d12_old $PWD/.carry/old -e d12
TP d12_new_cls1 $PWD -e d12 -- --fp8-classifier 1
T done
