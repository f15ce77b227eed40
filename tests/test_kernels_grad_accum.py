"""Weight gradients summed by the matmuls (kernels/grad_accum.py, --accumulate-in-matmul): the same gradients
as autograd's own accumulation over several micro-steps, for a linear layer, the fused MLP and the whole
model (eager and compiled, every -r), into views of one flat buffer as the trainer lays them out."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from gpt2train.config import ModelConfig
from gpt2train.kernels.gelu_mlp import BACKWARDS, gelu_mlp, gelu_mlp_reference
from gpt2train.kernels.grad_accum import accumulating, addmm_into, linear_accumulate
from gpt2train.model import GPT
from gpt2train.train.accelerate import FastLinear, FastPaths, accelerate
from gpt2train.train.optim import flatten_parameters_
from tests.helpers import progress_losses, run_cli, tiny_train_args


class _CountOps(TorchDispatchMode):
    def __enter__(self):
        self.names = []
        return super().__enter__()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))

    def count(self, name: str) -> int:
        return self.names.count(name)


CFG = ModelConfig(n_layer=2, n_head=4, n_embd=64, vocab_size=256, max_seq_len=32)


def test_addmm_into_adds_the_product_in_place():
    out = torch.randn(5, 3)
    before, a, b = out.clone(), torch.randn(5, 4), torch.randn(4, 3)
    addmm_into(out, a, b)
    torch.testing.assert_close(out, before + a @ b)


def test_linear_accumulate_equals_autograd_over_micro_steps():
    torch.manual_seed(0)
    w = torch.randn(24, 16, requires_grad=True)
    b = torch.randn(24, requires_grad=True)
    flat = torch.randn(24 * 16 + 24)  # leftover values: the sum must start from what is there
    wgrad, bgrad = flat[: 24 * 16].view(24, 16), flat[24 * 16 :]
    start_w, start_b = wgrad.clone(), bgrad.clone()
    ref_w, ref_b = w.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    for _ in range(3):
        x = torch.randn(2, 5, 16, requires_grad=True)
        x_ref = x.detach().clone().requires_grad_()
        y = linear_accumulate(x, w, b, wgrad, bgrad)
        y_ref = F.linear(x_ref, ref_w, ref_b)
        torch.testing.assert_close(y, y_ref)
        (y * y).sum().backward()
        (y_ref * y_ref).sum().backward()
        torch.testing.assert_close(x.grad, x_ref.grad)
    assert w.grad is None and b.grad is None  # nothing left for autograd to add
    torch.testing.assert_close(wgrad, start_w + ref_w.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bgrad, start_b + ref_b.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backward", BACKWARDS)
def test_gelu_mlp_accumulates_all_four_gradients(backward):
    torch.manual_seed(1)
    params = [torch.randn(32, 16), torch.randn(32), torch.randn(16, 32), torch.randn(16)]
    params = [(p * 0.2).requires_grad_() for p in params]
    ref = [p.detach().clone().requires_grad_() for p in params]
    bufs = [torch.zeros_like(p) for p in params]
    for _ in range(2):
        x = torch.randn(3, 4, 16)
        gelu_mlp(x, *params, backward=backward, grads=tuple(bufs)).square().sum().backward()
        gelu_mlp_reference(x, *ref).square().sum().backward()
    for p, buf, r in zip(params, bufs, ref):
        assert p.grad is None
        torch.testing.assert_close(buf, r.grad, rtol=1e-5, atol=1e-5)


def test_accumulating_only_with_a_usable_grad():
    layer = FastLinear(8, 8)
    assert accumulating(layer) is None  # switched off
    assert accumulating(torch.nn.Linear(8, 8)) is None  # the plain model's
    layer.accumulate_grad = True
    assert accumulating(layer) is None  # no .grad yet: autograd makes it
    layer.weight.grad, layer.bias.grad = torch.zeros(8, 8), torch.zeros(8)
    assert accumulating(layer) is not None
    with torch.no_grad():
        assert accumulating(layer) is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert accumulating(layer) is None  # fp32 buffers, bf16 matmuls: autograd casts and sums


def _model_grads(
    accumulate: bool,
    recompute: int,
    gelu_fusion: int,
    backend: str | None,
    dtype=torch.float32,
    cfg: ModelConfig | None = None,
):
    cfg = cfg or CFG
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = GPT(cfg).to(dtype)
    accelerate(model, FastPaths(recompute=recompute, gelu_fusion=gelu_fusion, accumulate_grads=accumulate))
    flatten_parameters_(list(model.parameters()))  # the trainer's one-process layout: .grad views of one buffer
    if backend:
        for block in model.transformer.h:
            block.compile(backend=backend)
    gen = torch.Generator().manual_seed(1)
    with _CountOps() as ops:
        for _ in range(3):  # micro-steps
            idx = torch.randint(0, cfg.vocab_size, (2, 32), generator=gen)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                loss = model(idx, idx)
            (loss / 3).backward()
    # the switch took effect: each block's four weight gradients went through the matmul's sum, except in blocks
    # recomputed whole (-r 3), which leave the sums to autograd
    assert ops.count("gpt2train.addmm_into") == (4 * cfg.n_layer * 3 if accumulate and recompute < 3 else 0)
    return {n: p.grad.float() for n, p in model.named_parameters()}


@pytest.mark.parametrize(
    "recompute,gelu_fusion,backend",
    [
        (0, 2, None),
        (0, 2, "aot_eager_decomp_partition"),
        (1, 0, "aot_eager_decomp_partition"),
        (2, 0, None),
        (2, 0, "aot_eager_decomp_partition"),
        (3, 0, None),
    ],
)
def test_model_gradients_equal_autograd_accumulation(recompute, gelu_fusion, backend):
    ref = _model_grads(False, recompute, gelu_fusion, backend)
    got = _model_grads(True, recompute, gelu_fusion, backend)
    for name, g in got.items():
        torch.testing.assert_close(g, ref[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("recompute,backend", [(0, None), (1, "aot_eager_decomp_partition"), (2, None)])
def test_modern_model_gradients_equal_autograd_accumulation(recompute, backend):
    """The linears without biases (RMSNorm) and the relu2 MLP: the matmuls' sums equal autograd's."""
    cfg = ModelConfig(**{**CFG.to_dict(), "pos": "rotary", "qk_norm": True, "mlp": "relu2", "norm": "rmsnorm",
                         "untied_head": True, "logit_softcap": 15.0})  # fmt: skip
    ref = _model_grads(False, recompute, 2, backend, cfg=cfg)
    got = _model_grads(True, recompute, 2, backend, cfg=cfg)
    for name, g in got.items():
        torch.testing.assert_close(g, ref[name], rtol=1e-4, atol=1e-6, msg=name)


def test_model_bf16_accumulation_is_close_to_autograd():
    """bf16 parameters under autocast, as the GPU runs: one rounding per micro-step instead of two."""
    ref = _model_grads(False, 0, 2, None, torch.bfloat16)
    got = _model_grads(True, 0, 2, None, torch.bfloat16)
    for name, g in got.items():
        err = (g - ref[name]).norm() / ref[name].norm().clamp_min(1e-12)
        assert err < 2e-2, (name, err)


@pytest.mark.parametrize("extra,tol", [([], 1e-5), (["--bf16-params", "1", "--dtype", "bf16"], 2e-2)])
def test_training_with_the_switch_matches_autograd_sums(tmp_path, text_shards, extra, tol):
    """4 steps of 2 micro-steps each: fp32 (the first micro-step's .grad is autograd's, then the matmuls add
    into it) and bf16 parameters with the flat gradient buffer (every micro-step adds into it)."""
    losses = {}
    for on in (0, 1):
        run = tmp_path / f"acc{on}"
        code, _, _ = run_cli(tiny_train_args(text_shards, run, 4, [*extra, "--accumulate-in-matmul", on]))
        assert code == 0
        losses[on] = progress_losses(run)
    assert losses[0].keys() == losses[1].keys()
    for key, loss in losses[0].items():
        assert abs(losses[1][key] - loss) <= tol * abs(loss), (key, loss, losses[1][key])


def test_bad_switch_value_is_one_line_error(tmp_path, text_shards, capsys):
    code, _, err = run_cli(tiny_train_args(text_shards, tmp_path / "r", 1, ["--accumulate-in-matmul", "3"]),
                           capsys)  # fmt: skip
    assert code != 0 and "--accumulate-in-matmul 3" in err


@pytest.mark.parametrize(
    "fields,fast,several,expected",
    [
        ({"bf16_params": 1}, True, False, 1),  # llm.c's layout on the fast path in one process
        ({"bf16_params": 0, "master_weights": 0}, True, False, 1),  # -w 0: bf16 parameters too
        ({"bf16_params": 0}, True, False, 0),  # fp32 .grad: nothing to add into in bf16
        ({"bf16_params": 1}, False, False, 0),  # plain path
        ({"bf16_params": 1}, True, True, 0),  # DDP and ZeRO-1 take the gradients from autograd
        ({"bf16_params": 1, "recompute": 3}, True, False, 0),  # compiled -r 3 would keep the matmul inputs
        ({"bf16_params": 1, "recompute": 2}, True, False, 1),
        ({"bf16_params": 1, "recompute": 1}, True, False, 1),
    ],
)
def test_auto_switch_resolution(fields, fast, several, expected):
    """--accumulate-in-matmul -1 as resolve() decides it on a (faked) CUDA card: ``fast`` False is --plain."""
    from gpt2train.config import Environment, TrainConfig, resolve

    env = Environment(device=torch.device("cuda"), world_size=2 if several else 1, gpu_memory=80 * 2**30)
    assert resolve(TrainConfig(**fields, plain=not fast), env).accumulate_in_matmul == expected
