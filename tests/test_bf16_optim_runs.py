"""The bf16-parameter AdamWs over a flattened model (train.optim.flatten_parameters_): one update call per
run of back-to-back parameters instead of one per parameter, with the same result."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from gpt2train.train.optim import build_optimizer, flatten_parameters_


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 16), nn.LayerNorm(16), nn.Linear(16, 4)).to(
        torch.bfloat16
    )


def _data(steps: int, micro: int):
    g = torch.Generator().manual_seed(1)
    return torch.randn(steps, micro, 32, 8, generator=g).to(torch.bfloat16)


class _Calls:
    """Counts the optimizer's update calls and the elements each covered."""

    def __init__(self, opt):
        self.sizes: list[int] = []
        inner = opt.update

        def update(p, *args, **kwargs):
            self.sizes.append(p.numel())
            return inner(p, *args, **kwargs)

        opt.update = update


def _train(model, opt, data, start=0, end=None):
    for step in range(start, len(data) if end is None else end):
        opt.zero_grad(set_to_none=True)
        for x in data[step]:  # micro-steps accumulate into .grad
            model(x).float().square().mean().backward()
        opt.step()


@pytest.mark.parametrize("master", [True, False])
def test_flat_model_updates_once_per_group_and_equals_per_parameter(master):
    data = _data(steps=4, micro=2)
    plain, flat = _model(), _model()
    kw = dict(lr=1e-2, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-8, device_type="cpu", bf16_master=master)
    opt_plain = build_optimizer(plain, **kw)
    opt_flat = build_optimizer(flat, **kw, flat=True)
    calls_plain, calls_flat = _Calls(opt_plain), _Calls(opt_flat)
    _train(plain, opt_plain, data)
    _train(flat, opt_flat, data)
    n_params = sum(p.numel() for p in flat.parameters())
    assert len(calls_plain.sizes) == 4 * len(list(plain.parameters()))
    assert len(calls_flat.sizes) == 4 * 2  # decayed matrices, then biases and LayerNorm: one call each
    assert sum(calls_flat.sizes) == 4 * n_params
    # every gradient is still a view into the one buffer that zero_grad(set_to_none=True) kept
    (buf,) = opt_flat.grad_buffers
    for p in flat.parameters():
        assert p.grad.untyped_storage().data_ptr() == buf.untyped_storage().data_ptr()
    if master:  # the master copy's arithmetic is elementwise: the layout changes nothing
        for a, b in zip(plain.parameters(), flat.parameters()):
            assert torch.equal(a, b)
    else:  # stochastic rounding draws per call: other bits, as close, and as deterministic
        again = _model()
        opt_again = build_optimizer(again, **kw, flat=True)
        _train(again, opt_again, data)
        for a, b, c, init in zip(plain.parameters(), flat.parameters(), again.parameters(), _model().parameters()):
            assert (a.float() - b.float()).abs().max() < 0.05 and not torch.equal(b, init)
            assert torch.equal(b, c)


def test_flat_resume_is_exact_and_stays_flat():
    data = _data(steps=6, micro=1)
    kw = dict(lr=1e-2, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-8, device_type="cpu", bf16_master=True, flat=True)
    full = _model()
    opt_full = build_optimizer(full, **kw)
    _train(full, opt_full, data)

    first = _model()
    opt_first = build_optimizer(first, **kw)
    _train(first, opt_first, data, end=3)
    saved_state = {k: v.clone() for k, v in first.state_dict().items()}
    saved_opt = opt_first.state_dict()
    resumed = _model(seed=5)
    opt_resumed = build_optimizer(resumed, **kw)
    resumed.load_state_dict(saved_state)
    opt_resumed.load_state_dict(saved_opt)
    calls = _Calls(opt_resumed)
    _train(resumed, opt_resumed, data, start=3)
    assert len(calls.sizes) == 3 * 2  # the loaded state is laid out back to back again
    for a, b in zip(full.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(opt_full.state.values(), opt_resumed.state.values()):
        assert torch.equal(a["master"], b["master"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])


def test_run_breaks_where_memory_is_not_back_to_back():
    """Parameters that only look adjacent, or sit in another buffer, are updated on their own."""
    from gpt2train.kernels.master_adamw import MasterAdamW

    ps = [nn.Parameter(torch.randn(n).to(torch.bfloat16)) for n in (5, 7, 3, 4)]
    flatten_parameters_(ps[:2])
    flatten_parameters_(ps[2:])
    opt = MasterAdamW(ps, lr=1e-2)
    calls = _Calls(opt)
    for p in ps:
        p.grad.fill_(1.0)
    opt.step()
    assert calls.sizes == [12, 7]
    ps[1].grad = torch.ones(7, dtype=torch.bfloat16)  # no longer in the buffer
    opt.step()
    assert calls.sizes[2:] == [5, 7, 7]
    assert all(opt.state[p]["step"] == 2 for p in ps)


def test_flatten_keeps_values_and_pads():
    ps = [nn.Parameter(torch.arange(6.0).view(2, 3)), nn.Parameter(torch.tensor([7.0, 8.0]))]
    params, grads = flatten_parameters_(ps, numel=10)
    assert params.shape == grads.shape == (10,)
    assert params[:8].tolist() == [0, 1, 2, 3, 4, 5, 7, 8] and not grads.any()
    assert ps[0].shape == (2, 3) and ps[1].data_ptr() == params[6:].data_ptr()
    ps[1].grad.add_(1.0)
    assert grads[6:8].tolist() == [1.0, 1.0]
