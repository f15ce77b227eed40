"""The modern recipe: Muon, the architecture levers, training, exact resume, sampling, export, plan."""

from __future__ import annotations

import json
import math

import pytest
import torch

from gpt2train.config import ModelConfig
from gpt2train.model import GPT, apply_rotary, build_model, rotary_tables
from gpt2train.train.muon import NS_COEFFICIENTS, MuonAdamW, muon_param_groups, newton_schulz
from gpt2train.train.optim import persistent_grads_, set_lr
from tests.helpers import progress_losses, resume_copy, run_cli, tiny_train_args

SHAPE = dict(n_layer=2, n_head=4, n_embd=64, max_seq_len=64)
MODERN = dict(pos="rotary", qk_norm=True, mlp="relu2", norm="rmsnorm", zero_init_proj=True, untied_head=True,
              logit_softcap=15.0)  # fmt: skip


def ns_reference(G: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Newton-Schulz in float64 through the SVD: the quintic acts on each singular value alone."""
    a, b, c = NS_COEFFICIENTS
    U, S, Vh = torch.linalg.svd(G.double(), full_matrices=False)
    s = S / torch.linalg.matrix_norm(G.double())[..., None]  # Frobenius norm of each matrix
    for _ in range(steps):
        s = a * s + b * s**3 + c * s**5
    return U @ torch.diag_embed(s) @ Vh


@pytest.mark.parametrize("shape", [(16, 16), (12, 40), (40, 12), (3, 8, 8)])
def test_newton_schulz_equals_svd_reference(shape):
    G = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = ns_reference(G)
    assert torch.allclose(newton_schulz(G, dtype=torch.float64), ref, atol=1e-10)
    # bf16 (what training uses) stays within bf16's few-percent error of the same map (measured: 2.5-4%)
    bf16 = newton_schulz(G.float(), dtype=torch.bfloat16).double()
    assert (bf16 - ref).norm() < 0.06 * ref.norm()
    # and it is roughly orthogonal: every singular value lands near 1, unlike the input's
    sv = torch.linalg.svdvals(newton_schulz(G, dtype=torch.float64))
    assert sv.min() > 0.5 and sv.max() < 1.3


def test_muon_step_equals_float64_reference():
    gen = torch.Generator().manual_seed(1)
    W = torch.randn(48, 16, dtype=torch.float64, generator=gen)  # split 3: three 16 x 16 blocks
    V = torch.randn(16, 40, dtype=torch.float64, generator=gen)
    params = [W.clone().requires_grad_(), V.clone().requires_grad_()]
    opt = MuonAdamW([{"params": [params[0]], "kind": "muon", "split": 3}, {"params": [params[1]], "kind": "muon"}],
                    lr=0.05, momentum=0.9, ns_dtype="fp64")  # fmt: skip
    ref = [W.clone(), V.clone()]
    bufs = [torch.zeros_like(W), torch.zeros_like(V)]
    for _ in range(3):
        grads = [torch.randn(p.shape, dtype=torch.float64, generator=gen) for p in params]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        for i, (g, split) in enumerate(zip(grads, (3, 1))):
            bufs[i] = 0.9 * bufs[i] + 0.1 * g
            u = (0.1 * g + 0.9 * bufs[i]).view(split, -1, g.size(1))
            o = torch.stack([ns_reference(blk) for blk in u])
            rows, cols = u.shape[-2:]
            ref[i] = ref[i] - 0.05 * math.sqrt(max(1, rows / cols)) * o.view_as(g)
    for p, r in zip(params, ref):
        assert torch.allclose(p.detach(), r, atol=1e-10)


def test_adamw_groups_equal_torch_adamw():
    gen = torch.Generator().manual_seed(2)
    p0 = torch.randn(20, 8, generator=gen)
    a, b = p0.clone().requires_grad_(), p0.clone().requires_grad_()
    ours = MuonAdamW([{"params": [a], "kind": "adamw", "weight_decay": 0.1}], lr=1e-2, betas=(0.8, 0.95), eps=1e-8)
    theirs = torch.optim.AdamW([b], lr=1e-2, betas=(0.8, 0.95), eps=1e-8, weight_decay=0.1, foreach=False)
    for _ in range(4):
        g = torch.randn(p0.shape, generator=gen)
        a.grad, b.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
    assert torch.allclose(a, b, atol=1e-6, rtol=0)


@pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="torch.optim.Muon needs torch >= 2.9")
def test_muon_agrees_with_torch_muon():
    gen = torch.Generator().manual_seed(3)
    p0 = torch.randn(32, 64, generator=gen) * 0.02
    a, b = p0.clone().requires_grad_(), p0.clone().requires_grad_()
    ours = MuonAdamW([{"params": [a], "kind": "muon"}], lr=0.02, momentum=0.95)
    theirs = torch.optim.Muon([b], lr=0.02, momentum=0.95, nesterov=True, weight_decay=0.0)
    for _ in range(3):
        g = torch.randn(p0.shape, generator=gen)
        a.grad, b.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
    # both iterate in bf16 (with differently ordered arithmetic): equal to bf16 rounding of the update
    assert (a - b).abs().max() < 0.02 * 0.05


def test_param_groups_and_lr_scales():
    model = build_model(ModelConfig(**SHAPE, **MODERN))
    groups = muon_param_groups(model, lr=1e-3, weight_decay=0.1, muon_lr=0.02, embed_lr=0.2, head_lr=0.004)
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"qkv", "matrices", "embed", "head"}  # rmsnorm: no gains, no biases
    assert by_name["qkv"]["split"] == 3 and len(by_name["qkv"]["params"]) == 2
    assert len(by_name["matrices"]["params"]) == 2 * 3  # attn c_proj, mlp c_fc, mlp c_proj per layer
    assert by_name["embed"]["params"][0] is model.transformer.wte.weight
    assert by_name["head"]["params"][0] is model.lm_head.weight
    assert by_name["qkv"]["weight_decay"] == 0.0 and by_name["head"]["weight_decay"] == 0.1
    opt = MuonAdamW(groups, lr=1e-3)
    set_lr(opt, 5e-4)  # half the peak: every group at half its own peak
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == pytest.approx({"qkv": 0.01, "matrices": 0.01, "embed": 0.1, "head": 0.002})
    # classic GPT with Muon: tied wte and wpe decay at -l, LayerNorms and biases do not
    classic = build_model(ModelConfig(**SHAPE))
    names = {g["name"]: len(g["params"]) for g in muon_param_groups(classic, 1e-3, 0.1, 0.02, 0.2, 0.004)}
    assert names == {"qkv": 2, "matrices": 6, "decay": 2, "no_decay": 2 * 8 + 2}


def test_rotary_matches_direct_formula():
    cfg = ModelConfig(**SHAPE, pos="rotary")
    hs = cfg.n_embd // cfg.n_head
    cos, sin = rotary_tables(cfg)
    x = torch.randn(1, 1, 5, hs, dtype=torch.float64)
    y = apply_rotary(x, cos[:5].double(), sin[:5].double())
    for p in range(5):
        for i in range(hs // 2):
            theta = p * 10000.0 ** (-2 * i / hs)
            x1, x2 = x[0, 0, p, i].item(), x[0, 0, p, i + hs // 2].item()
            assert y[0, 0, p, i].item() == pytest.approx(x1 * math.cos(theta) - x2 * math.sin(theta), abs=1e-5)
            assert y[0, 0, p, i + hs // 2].item() == pytest.approx(
                x1 * math.sin(theta) + x2 * math.cos(theta), abs=1e-5
            )
    # attention scores depend on the offset only: <R_p q, R_k k> = <R_{p+3} q, R_{k+3} k>
    q, k = torch.randn(2, hs, dtype=torch.float64)
    rot = [apply_rotary(t.expand(1, 1, 64, hs), cos.double(), sin.double())[0, 0] for t in (q, k)]
    assert torch.allclose(rot[0][7] @ rot[1][2], rot[0][10] @ rot[1][5])


def test_qk_norm_makes_attention_scale_free():
    cfg = ModelConfig(**SHAPE, qk_norm=True, norm="rmsnorm")
    attn = build_model(cfg).transformer.h[0].attn
    x = torch.randn(2, 10, cfg.n_embd)
    seen = []  # q and k as attention receives them
    real_sdpa = torch.nn.functional.scaled_dot_product_attention
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.nn.functional, "scaled_dot_product_attention", lambda q, k, v, **kw: seen.append((q, k))
                   or real_sdpa(q, k, v, **kw))  # fmt: skip
        before = attn(x)
    q, k = seen[0]
    assert torch.allclose(q.pow(2).mean(-1), torch.ones(()), atol=1e-3)  # unit RMS per head
    assert torch.allclose(k.pow(2).mean(-1), torch.ones(()), atol=1e-3)
    with torch.no_grad():
        attn.c_attn.weight[: 2 * cfg.n_embd] *= 7.0  # scale the q and k projections
    assert torch.allclose(attn(x), before, atol=1e-5)


def test_relu2_mlp():
    cfg = ModelConfig(**SHAPE, mlp="relu2")
    mlp = build_model(cfg).transformer.h[0].mlp
    x = torch.randn(3, cfg.n_embd)
    h = x @ mlp.c_fc.weight.T + mlp.c_fc.bias
    expected = (torch.clamp(h, min=0) ** 2) @ mlp.c_proj.weight.T + mlp.c_proj.bias
    assert torch.allclose(mlp(x), expected, atol=1e-6)


def test_persistent_grads_take_each_micro_step_in_place():
    """Under CUDA graphs the loop gives every parameter a .grad before the first backward and zeroes it in place
    after the step: each micro-step's gradient is then added into that same tensor (autograd would otherwise keep
    the first one in the graph's memory, which the next replay overwrites), summing to the same gradients."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(**SHAPE, **MODERN))
    x = torch.randint(0, 64, (2, 8))
    for _ in range(2):
        model(x, x).backward()
    reference = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    persistent_grads_(model)
    storage = {n: p.grad.data_ptr() for n, p in model.named_parameters()}
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    for _ in range(2):
        model(x, x).backward()
        assert {n: p.grad.data_ptr() for n, p in model.named_parameters()} == storage
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, reference[n], msg=n)
    optimizer = MuonAdamW(muon_param_groups(model, 6e-4, 0.0, 0.02, 6e-4, 6e-4))
    optimizer.zero_grad(set_to_none=False)
    persistent_grads_(model)  # nothing to add: every .grad is there, zeroed in place
    assert {n: p.grad.data_ptr() for n, p in model.named_parameters()} == storage
    assert not any(p.grad.any() for p in model.parameters())


def test_all_levers_classic_is_gpt():
    """Every lever at its classic value is the classic config (llm.c's file format, the shape-only config.json);
    a lever set makes it another: the modern file format, every field in its dict."""
    cfg = ModelConfig(**SHAPE)
    assert cfg.classic and cfg == ModelConfig(**SHAPE, pos="learned", qk_norm=False, mlp="gelu", norm="layernorm")
    assert set(cfg.to_dict()) == {"n_layer", "n_head", "n_embd", "vocab_size", "max_seq_len", "padded_vocab_size"}
    for lever, value in MODERN.items():
        one = ModelConfig(**SHAPE, **{lever: value})
        assert not one.classic and one.to_dict()[lever] == value, lever
    keys = build_model(cfg).state_dict().keys()
    assert list(keys)[:3] == ["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight"]


def test_cached_sampling_equals_uncached():
    from gpt2train.sample import generate

    model = build_model(ModelConfig(**SHAPE, **{**MODERN, "zero_init_proj": False}), seed=1)
    kw = dict(temperature=0.0)
    cached = generate(model, [50256, 464], 70, use_cache=True, **kw)  # runs past max_seq_len 64
    plain = generate(model, [50256, 464], 70, use_cache=False, **kw)
    assert cached == plain and len(cached) == 70


@pytest.fixture(scope="module")
def modern_run(tmp_path_factory, text_shards):
    """A tiny --recipe modern run: 12 steps, checkpoints at 6 and 12."""
    run = tmp_path_factory.mktemp("modern") / "run"
    args = tiny_train_args(text_shards, run, 12, ["--recipe", "modern", "-n", "6", "-v", "6", "-s", "6"])
    code, _, _ = run_cli(args)
    assert code == 0
    return run, args


def test_modern_recipe_trains_and_writes_safetensors(modern_run):
    run, _ = modern_run
    val = {step: v for (kind, step), v in progress_losses(run).items() if kind == "val"}
    assert val[12] < val[0] - 1.0, val  # from ~10.8 (uniform) down
    assert (run / "model_00000012.safetensors").exists() and not (run / "model_00000012.bin").exists()
    cfg = json.load(open(run / "config.json"))
    assert cfg["model"]["pos"] == "rotary" and cfg["model"]["logit_softcap"] == 15.0


def test_muon_resume_is_exact(modern_run, tmp_path, capsys):
    run, args = modern_run
    resumed = tmp_path / "resumed"
    # without the step-12 checkpoint: resume from step 6
    code, out, err = run_cli(resume_copy(run, resumed, 12, args), capsys)
    assert code == 0, err
    assert "resumed from checkpoint at step 6" in out
    assert progress_losses(resumed) == progress_losses(run)  # full-precision losses, bit for bit
    assert open(resumed / "main.log").read() == open(run / "main.log").read()


def test_modern_model_eval_sample_export(modern_run, tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    from gpt2train.evaluate import load_model

    run, args = modern_run
    val = args[args.index("-j") + 1]
    code, out, err = run_cli(["eval", "--model", run, "-j", val, "-b", "2", "-t", "32", "-m", "2", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["val_loss"] < 10.0
    code, out, err = run_cli(["sample", "--model", run, "-g", "8", "--prompt", "ROMEO:"], capsys)
    assert code == 0 and out.startswith("ROMEO:"), err
    code, _, err = run_cli(["export", "--model", run, "--to", "llmc", "-o", tmp_path / "x.bin"], capsys)
    assert code != 0 and "llm.c's format cannot hold it" in err

    out_dir = tmp_path / "hf"
    code, _, err = run_cli(["export", "--model", run, "--to", "hf", "-o", out_dir], capsys)
    assert code == 0, err
    ours = load_model(str(run))
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(out_dir), trust_remote_code=True).eval()
    idx = torch.randint(0, 50257, (2, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = ours(idx), hf(idx).logits
        assert (a - b).abs().max() < 1e-5
        assert abs(ours(idx[:, :-1], idx[:, 1:]).item() - hf(idx, labels=idx).loss.item()) < 1e-5
    back = load_model(str(out_dir))  # the exported dir reads back without running its code
    assert torch.equal(back(idx), a)


def test_muon_refuses_bf16_weights(tmp_path, text_shards, capsys):
    args = tiny_train_args(text_shards, tmp_path, 2, ["--optimizer", "muon", "-w", "0", "--dtype", "bf16"])
    code, _, err = run_cli(args, capsys)
    assert code != 0 and "muon" in err


def test_plan_modern_uses_token_ratio(capsys):
    from gpt2train import plan

    code, out, _ = run_cli(["plan", "-e", "d12", "--tokens", "10B", "--json"], capsys)
    classic = json.loads(out)
    code, out, _ = run_cli(["plan", "-e", "d12", "--tokens", "10B", "--recipe", "modern", "--json"], capsys)
    modern = json.loads(out)
    assert modern["tokens"] == round(classic["tokens"] * plan.MODERN_TOKEN_RATIO)
    ratio = plan.MODERN_TOKEN_RATIO * plan.MODERN_STEP_TIME_RATIO
    assert modern["hours"] == pytest.approx(classic["hours"] * ratio, rel=1e-3) and modern["recipe"] == "modern"
    code, out, _ = run_cli(["plan", "-e", "d12", "--tokens", "10B", "--recipe", "modern"], capsys)
    assert "modern recipe" in out


def test_muon_owners_are_balanced_and_deterministic():
    from gpt2train.train.muon import assign_owners

    model = build_model(ModelConfig(**SHAPE, **MODERN), seed=0)
    groups = muon_param_groups(model, 3e-3, 0.0, 0.02, 0.2, 0.004)
    other = muon_param_groups(build_model(ModelConfig(**SHAPE, **MODERN), seed=1), 3e-3, 0.0, 0.02, 0.2, 0.004)
    params = [p for g in groups for p in g["params"]]
    for world in (1, 2, 3, 8):
        owner, again = assign_owners(groups, world), assign_owners(other, world)
        assert len(owner) == len(params) and set(owner.values()) <= set(range(world))
        # another process builds its own tensors: the owners follow from the order and shapes alone
        assert [owner[p] for p in params] == [again[p] for g in other for p in g["params"]]
    owner = assign_owners(groups, 2)
    muon = [p for g in groups if g["kind"] == "muon" for p in g["params"]]
    loads = [sum(p.numel() for p in muon if owner[p] == r) for r in (0, 1)]
    assert loads[0] == loads[1]  # the tiny model's matrices pair up exactly


@pytest.mark.parametrize("levers", [{}, MODERN], ids=["classic", "modern"])
def test_fresh_model_skips_default_init_and_draws_the_same_weights(levers):
    """build_model makes the model on the meta device and initialises it once: the same
    parameters and buffers as constructing it normally and then drawing llm.c's initialisation."""
    cfg = ModelConfig(**SHAPE, **levers)
    fresh = build_model(cfg, seed=5)
    reference = GPT(cfg).init_weights(5)
    got, want = fresh.state_dict(keep_vars=True), reference.state_dict(keep_vars=True)
    assert got.keys() == want.keys()
    for name, t in want.items():
        assert torch.equal(got[name], t), name
    for (name, b), (_, ref) in zip(fresh.named_buffers(), reference.named_buffers(), strict=True):
        assert torch.equal(b, ref), name  # the rotary tables are not in the state dict
    assert all(p.device.type == "cpu" for p in fresh.parameters())
    # built at bf16 where it runs (the trainer's bf16 layouts): the fp32 values rounded once, buffers too
    half = build_model(cfg, seed=5, device="cpu", dtype=torch.bfloat16)
    for (name, t), (_, ref) in zip(half.state_dict().items(), reference.to(torch.bfloat16).state_dict().items()):
        assert t.dtype == torch.bfloat16 and torch.equal(t, ref), name
    for (name, b), (_, ref) in zip(half.named_buffers(), reference.named_buffers(), strict=True):
        assert torch.equal(b, ref), name
    if not levers:  # each weight from its own stream: seeded by the seed and its name, not by the others
        from gpt2train.model import param_seed

        for name in ("transformer.wte.weight", "transformer.h.1.mlp.c_fc.weight"):
            w = got[name]
            want = torch.randn(w.shape, generator=torch.Generator().manual_seed(param_seed(5, name))) * 0.02
            torch.testing.assert_close(w, want, rtol=0, atol=0, msg=name)
        assert not torch.equal(got["transformer.h.0.attn.c_attn.weight"], got["transformer.h.1.attn.c_attn.weight"])
        assert param_seed(5, "x") != param_seed(6, "x")


_HF_ALONE = """
import importlib.abc, sys

class NoGpt2train(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "gpt2train" or name.startswith("gpt2train."):
            raise ImportError("gpt2train is not installed here")

sys.meta_path.insert(0, NoGpt2train())
import torch, transformers

hf = transformers.AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
idx = torch.load(sys.argv[2])
with torch.no_grad():
    torch.save(hf(idx).logits, sys.argv[3])
assert not [m for m in sys.modules if m.split(".")[0] == "gpt2train"]
"""


@pytest.mark.parametrize("levers", [{**MODERN, "zero_init_proj": False}, dict(untied_head=True, logit_softcap=5.0)],
                         ids=["modern", "learned_untied"])  # fmt: skip
def test_hf_export_is_model_py_itself_and_runs_without_gpt2train(tmp_path, levers):
    """The exported directory's model is a copy of model.py (the architecture is written once); loaded where
    gpt2train cannot be imported, it computes model.GPT's logits."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("transformers")
    import gpt2train.model
    from gpt2train.formats.hf_modern import write_modern_hf_dir

    cfg = ModelConfig(**SHAPE, **levers)
    model = build_model(cfg, seed=2)
    out = tmp_path / "hf"
    write_modern_hf_dir(out, cfg, model.state_dict())
    assert (out / "gpt2train_model.py").read_text() == Path(gpt2train.model.__file__).read_text()
    idx = torch.randint(0, 50257, (2, 24), generator=torch.Generator().manual_seed(0))
    torch.save(idx, tmp_path / "idx.pt")
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", _HF_ALONE, str(out), str(tmp_path / "idx.pt"), str(tmp_path / "logits.pt")],
                   check=True, env=env, timeout=300)  # fmt: skip
    with torch.no_grad():
        torch.testing.assert_close(torch.load(tmp_path / "logits.pt"), model(idx), rtol=1e-4, atol=1e-4)
