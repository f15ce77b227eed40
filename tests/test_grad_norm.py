"""The logged grad norm, the clip coefficient and the -sg z-scores come from an fp32 norm, also of bf16
gradients (as llm.c): not bf16's 16.0000, 12.0000, 7.4375."""

import json

import torch

from gpt2train.train.guards import clip_grad_norm_fp32_, squared_norm_fp32
from tests.helpers import run_cli, tiny_train_args


def _bf16_params(seed: int = 0) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.zeros(n, dtype=torch.bfloat16)) for n in (4096, 768, 33)]
    for p in params:
        p.grad = (torch.randn(p.shape, generator=gen) * 0.37).to(torch.bfloat16)
    return params


def test_norm_of_bf16_gradients_equals_the_fp32_norm():
    params = _bf16_params()
    exact = torch.cat([p.grad.double().flatten() for p in params]).norm().item()
    norm = clip_grad_norm_fp32_(params, max_norm=1e9)
    assert norm.dtype == torch.float32
    assert abs(norm.item() - exact) <= 1e-6 * exact
    # what torch's own clip gives for bf16 gradients: a bf16 number, off by far more than fp32's precision
    torch_norm = torch.nn.utils.clip_grad_norm_(_bf16_params(), max_norm=1e9)
    assert torch_norm.dtype == torch.bfloat16 and abs(torch_norm.item() - exact) > 1e-4 * exact


def test_clip_scales_by_the_fp32_coefficient():
    params = _bf16_params()
    before = [p.grad.float().clone() for p in params]
    norm = clip_grad_norm_fp32_(params, max_norm=1.0).item()
    coef = 1.0 / (norm + 1e-6)
    for p, g in zip(params, before):
        torch.testing.assert_close(p.grad.float(), (g * coef).bfloat16().float(), rtol=0, atol=0)
    assert abs(squared_norm_fp32([p.grad for p in params]).sqrt().item() - 1.0) < 1e-2  # bf16 elements


def test_logged_norm_of_a_bf16_run_is_not_bf16_rounded(tmp_path, text_shards, capsys):
    run = tmp_path / "run"
    # -w 0: bf16 weights, so bf16 gradients (on the CPU too)
    code, _, err = run_cli(tiny_train_args(text_shards, run, 4, ["--dtype", "bf16", "-w", "0"]), capsys)
    assert code == 0, err
    norms = [
        r["norm"] for r in map(json.loads, (run / "progress.jsonl").read_text().splitlines()) if r["kind"] == "train"
    ]
    assert len(norms) == 4
    # a bf16 sum has 8 significant bits: every such norm would survive a round trip through bf16 unchanged
    assert any(torch.tensor(n).bfloat16().float().item() != torch.tensor(n).float().item() for n in norms), norms
