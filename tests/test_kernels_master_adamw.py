"""MasterAdamW (--bf16-params 1): bf16 parameters, fp32 master copy in the optimizer state; reference,
Triton kernel (CPU interpreter), optimizer."""

from __future__ import annotations

import os

import pytest
import torch

# the interpreter is chosen when triton is imported: switch it on first (without a GPU only)
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from gpt2train.kernels import master_adamw as ma  # noqa: E402
from gpt2train.kernels._triton import triton_available  # noqa: E402
from tests.helpers import roundtrip  # noqa: E402

HYPER = dict(lr=3e-3, beta1=0.9, beta2=0.95, eps=1e-8)


def _moments_close(got: torch.Tensor, expected: torch.Tensor) -> bool:
    """Within a few fp32 ulps: the kernel may contract a multiply-add that torch rounds twice (as the GPU does)."""
    return torch.allclose(got, expected, rtol=4 * 2.0**-23, atol=0.0)


def _skip_unless_interpreter():
    if not triton_available():
        pytest.skip("triton is not installed")
    import triton.language.random as tl_random
    from triton.runtime.interpreter import InterpretedFunction

    if os.environ.get("TRITON_INTERPRET") != "1" or not isinstance(tl_random.randint, InterpretedFunction):
        pytest.skip("Triton's CPU interpreter is off (triton imported before TRITON_INTERPRET=1, or a GPU)")


def _grads(steps, n, seed):
    g = torch.Generator().manual_seed(seed)
    # mixed scales, as a model's gradients are; bf16-valued, as the bf16 model produces them
    scale = torch.logspace(-6, 0, n)[torch.randperm(n, generator=g)]
    return [(torch.randn(n, generator=g) * scale).to(torch.bfloat16) for _ in range(steps)]


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("kernel", ["reference", "triton"])
def test_step_equals_torch_adamw_on_an_fp32_copy(kernel, weight_decay):
    """Master and moments equal torch.optim.AdamW's (single-tensor CPU path) fed the same bf16-valued
    gradients over several steps: bit for bit for the reference, within the kernel's guarantee for the kernel
    (ma.MASTER_ULPS, measured on the GPU); the bf16 parameter is the master rounded to nearest."""
    if kernel == "triton":
        _skip_unless_interpreter()
    n, steps = 3000, 5  # not a multiple of the block
    p = torch.randn(n, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    ref = torch.nn.Parameter(p.float())
    opt = torch.optim.AdamW([ref], betas=(HYPER["beta1"], HYPER["beta2"]), lr=HYPER["lr"], eps=HYPER["eps"],
                            weight_decay=weight_decay, foreach=False)  # fmt: skip
    master, m, v = p.float(), torch.zeros(n), torch.zeros(n)
    for step, grad in enumerate(_grads(steps, n, seed=2), start=1):
        before = master.clone()
        ref.grad = grad.float()
        opt.step()
        if kernel == "triton":
            ma.adamw_master_(p, grad, master, m, v, weight_decay=weight_decay, step=step, block=512, **HYPER)
        else:
            ma.adamw_master_reference(p, grad, master, m, v, weight_decay=weight_decay, step=step, **HYPER)
        state = opt.state[ref]
        if kernel == "reference":  # torch's ops in torch's order: bit for bit
            assert torch.equal(m, state["exp_avg"]) and torch.equal(v, state["exp_avg_sq"]), step
            assert torch.equal(master, ref.detach()), step
        else:
            assert _moments_close(m, state["exp_avg"]) and _moments_close(v, state["exp_avg_sq"]), step
            assert ma.master_error_ulps(before, ref.detach(), master) <= ma.MASTER_ULPS, step
            assert not torch.equal(master, before), step  # the step moved the master
            # go on from torch's values: each step is held to the bound, not the drift of several
            master.copy_(ref.detach()), m.copy_(state["exp_avg"]), v.copy_(state["exp_avg_sq"])
            p.copy_(master)
        assert torch.equal(p, master.to(torch.bfloat16))


@pytest.mark.parametrize("beta1", [0.9, 0.3])  # both branches of torch's lerp
@pytest.mark.parametrize("grad_dtype", [torch.bfloat16, torch.float32])
def test_triton_kernel_equals_reference(beta1, grad_dtype):
    """Moments within a few ulps, the master within ma.MASTER_ULPS of the update's operands (what the kernel
    guarantees on the GPU, where multiply-adds may be contracted), and most of it bit for bit; the parameter
    is the kernel's master rounded to nearest."""
    _skip_unless_interpreter()
    g = torch.Generator().manual_seed(3)
    n = 2500
    p = torch.randn(n, generator=g).to(torch.bfloat16)
    master = p.float() + torch.randn(n, generator=g) * 1e-3  # a master off the bf16 grid
    m, v = torch.randn(n, generator=g) * 1e-3, torch.rand(n, generator=g) * 1e-5
    grad = (torch.randn(n, generator=g) * 1e-2).to(grad_dtype)
    hyper = dict(HYPER, beta1=beta1, weight_decay=0.1, step=7)
    a = [t.clone() for t in (p, master, m, v)]
    b = [t.clone() for t in (p, master, m, v)]
    ma.adamw_master_reference(a[0], grad, *a[1:], **hyper)
    ma.adamw_master_(b[0], grad, *b[1:], block=1024, **hyper)
    assert _moments_close(b[2], a[2]) and _moments_close(b[3], a[3])
    assert ma.master_error_ulps(master, a[1], b[1]) <= ma.MASTER_ULPS
    assert (a[1] != b[1]).float().mean() < 0.05
    assert not torch.equal(b[1], master)
    assert torch.equal(b[0], b[1].to(torch.bfloat16))


def test_triton_kernel_rounds_to_nearest_even_as_torch():
    """lr 0 leaves the master as it is: the parameter written is torch's bf16 conversion of it, ties,
    infinities, overflow and NaN included."""
    _skip_unless_interpreter()
    one = 1.0 + 2.0**-8  # halfway between 1 and the next bf16: ties to even (1)
    three = 1.0 + 3 * 2.0**-8  # halfway, rounds up to even
    special = [one, -one, three, float("inf"), -float("inf"), 3.4e38, 1e-40, 0.0, -0.0]
    master = torch.cat([torch.tensor(special), torch.randn(1000, generator=torch.Generator().manual_seed(4))])
    master_nan = torch.cat([master, torch.tensor([float("nan")])])
    for w in (master, master_nan):
        p = torch.zeros(w.numel(), dtype=torch.bfloat16)
        w2 = w.clone()
        ma.adamw_master_(p, torch.zeros_like(p), w2, torch.zeros_like(w), torch.ones_like(w), lr=0.0, beta1=0.9,
                         beta2=0.95, eps=1e-8, weight_decay=0.0, step=1)  # fmt: skip
        expect = w.to(torch.bfloat16)
        finite = ~torch.isnan(w)
        assert torch.equal(p[finite].view(torch.int16), expect[finite].view(torch.int16))
        assert torch.isnan(p[~finite].float()).all()


def _train(opt_factory, steps, resume_at=None, tmp_path=None):
    """A tiny bf16 least-squares problem; optionally save + restore the optimizer mid-way."""
    g = torch.Generator().manual_seed(0)
    w = torch.nn.Parameter(torch.randn(16, 8, generator=g).to(torch.bfloat16))
    b = torch.nn.Parameter(torch.zeros(16, dtype=torch.bfloat16))
    unused = torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16))  # grad stays None: skipped
    data = torch.randn(steps, 32, 8, generator=g).to(torch.bfloat16)

    def groups():
        return [{"params": [w], "weight_decay": 0.1}, {"params": [b, unused], "weight_decay": 0.0}]

    opt = opt_factory(groups())
    for s in range(steps):
        if resume_at is not None and s == resume_at:
            ck = roundtrip(tmp_path, {"opt": opt.state_dict(), "w": w.detach(), "b": b.detach()})
            w = torch.nn.Parameter(ck["w"].clone())
            b = torch.nn.Parameter(ck["b"].clone())
            opt = opt_factory(groups())
            opt.load_state_dict(ck["opt"])
            assert all(opt.state[w][k].dtype == torch.float32 for k in ("master", "exp_avg", "exp_avg_sq"))
        loss = ((data[s] @ w.t() + b).float() ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    assert unused not in opt.state and torch.equal(unused, torch.ones(4, dtype=torch.bfloat16))
    return w.detach(), b.detach(), opt


@pytest.mark.parametrize("use_triton", [False, True])
def test_optimizer_groups_master_and_exact_resume(use_triton, tmp_path):
    if use_triton:
        _skip_unless_interpreter()
    factory = lambda groups: ma.MasterAdamW(groups, lr=1e-2, use_triton=use_triton)  # noqa: E731
    w1, b1, opt1 = _train(factory, 6)
    w3, b3, opt3 = _train(factory, 6, resume_at=3, tmp_path=tmp_path)
    assert torch.equal(w1, w3) and torch.equal(b1, b3)
    s1, s3 = opt1.state_dict()["state"], opt3.state_dict()["state"]
    assert set(s1) == set(s3) == {0, 1}  # the unused parameter has no state
    for k in s1:
        assert s1[k]["step"] == s3[k]["step"] == 6
        for name in ("master", "exp_avg", "exp_avg_sq"):
            assert torch.equal(s1[k][name], s3[k][name])
    # the bf16 parameters are the masters rounded; the masters hold what bf16 cannot
    assert torch.equal(w1, opt1.state[opt1.param_groups[0]["params"][0]]["master"].to(torch.bfloat16))
    master_w = s1[0]["master"]
    assert not torch.equal(master_w, master_w.to(torch.bfloat16).float())


def test_weight_decay_group_matches_torch():
    """Per-group weight decay as torch.optim.AdamW applies it (on bf16-valued gradients)."""
    g = torch.Generator().manual_seed(5)
    init = [torch.randn(6, 4, generator=g).to(torch.bfloat16), torch.randn(4, generator=g).to(torch.bfloat16)]
    ours = [torch.nn.Parameter(t.clone()) for t in init]
    ref = [torch.nn.Parameter(t.float()) for t in init]
    opt = ma.MasterAdamW([{"params": [ours[0]], "weight_decay": 0.5}, {"params": [ours[1]], "weight_decay": 0.0}],
                         lr=1e-2)  # fmt: skip
    ropt = torch.optim.AdamW([{"params": [ref[0]], "weight_decay": 0.5}, {"params": [ref[1]], "weight_decay": 0.0}],
                             lr=1e-2, betas=(0.9, 0.95), foreach=False)  # fmt: skip
    for _ in range(3):
        for a, b in zip(ours, ref):
            grad = torch.randn(a.shape, generator=g).to(torch.bfloat16)
            a.grad, b.grad = grad, grad.float()
        opt.step(), ropt.step()
    for a, b in zip(ours, ref):
        assert torch.equal(opt.state[a]["master"], b.detach())
        assert torch.equal(a.detach(), b.detach().to(torch.bfloat16))


def test_optimizer_rejects_fp32_params():
    with pytest.raises(TypeError):
        ma.MasterAdamW([torch.nn.Parameter(torch.zeros(3))])
