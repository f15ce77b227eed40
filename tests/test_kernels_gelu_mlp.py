"""gelu_mlp (GELU in cuBLASLt epilogues) equals the plain MLP; the cuBLASLt binding's pure-Python parts.

On the CPU the two custom ops run their plain-torch fallback, which is the same formula the
cuBLASLt epilogues compute, so these tests hold the autograd wiring, the dtypes and the
torch.compile integration; bench/kernels_gpu_check.py --checks gelu_mlp holds the GPU kernels.
"""

from __future__ import annotations

import ctypes
import functools
import types

import pytest
import torch

from gpt2train.kernels import cublaslt
from gpt2train.kernels.gelu_mlp import BACKWARDS, STATS, gelu_mlp, gelu_mlp_reference

C, H = 16, 64


def _inputs(shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, C, generator=g)
    w_fc = torch.randn(H, C, generator=g) * 0.3
    b_fc = torch.randn(H, generator=g) * 0.1
    w_proj = torch.randn(C, H, generator=g) * 0.1
    b_proj = torch.randn(C, generator=g) * 0.1
    return [t.to(dtype) for t in (x, w_fc, b_fc, w_proj, b_proj)]


def _grads(fn, inputs, autocast=False, seed=1):
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        y = fn(*leaves)
    dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed)).to(y.dtype)
    y.backward(dy)
    return [y.detach()] + [t.grad for t in leaves]


NAMES = ("y", "dx", "dW_fc", "db_fc", "dW_proj", "db_proj")


@pytest.mark.parametrize("backward", BACKWARDS)
@pytest.mark.parametrize("shape", [(24,), (2, 8)])
def test_fp32_matches_reference(shape, backward):
    inputs = _inputs(shape)
    got, ref = _grads(functools.partial(gelu_mlp, backward=backward), inputs), _grads(gelu_mlp_reference, inputs)
    for name, a, r in zip(NAMES, got, ref):
        assert a.dtype == r.dtype == torch.float32 and a.shape == r.shape, name
        torch.testing.assert_close(a, r, rtol=1e-6, atol=1e-7, msg=name)


@pytest.mark.parametrize("backward", BACKWARDS)
def test_autocast_bf16_matches_reference(backward):
    inputs = _inputs((2, 8), seed=2)
    fused = functools.partial(gelu_mlp, backward=backward)
    got, ref = _grads(fused, inputs, autocast=True), _grads(gelu_mlp_reference, inputs, autocast=True)
    assert got[0].dtype == ref[0].dtype == torch.bfloat16
    for name, a, r in zip(NAMES, got, ref):
        if name != "y":
            assert a.dtype == r.dtype == torch.float32, name  # gradients in the inputs' dtype
        torch.testing.assert_close(a.float(), r.float(), rtol=2e-2, atol=2e-3, msg=name)
    # and both near the fp32 result
    exact = _grads(gelu_mlp_reference, inputs)
    for name, a, r in zip(NAMES, got, exact):
        assert ((a.double() - r.double()).norm() / r.double().norm()).item() < 2e-2, name


def test_bf16_tensors_match_reference():
    inputs = _inputs((32,), dtype=torch.bfloat16, seed=3)
    got, ref = _grads(gelu_mlp, inputs), _grads(gelu_mlp_reference, inputs)
    for name, a, r in zip(NAMES, got, ref):
        assert a.dtype == torch.bfloat16, name
        torch.testing.assert_close(a.float(), r.float(), rtol=2e-2, atol=2e-3, msg=name)


def test_no_grad_and_partial_grads():
    inputs = _inputs((8,))
    with torch.no_grad():
        torch.testing.assert_close(gelu_mlp(*inputs), gelu_mlp_reference(*inputs), rtol=1e-6, atol=1e-7)
    x, *params = inputs
    x = x.clone().requires_grad_()  # parameters frozen: only dx
    gelu_mlp(x, *params).sum().backward()
    x_ref = x.detach().clone().requires_grad_()
    gelu_mlp_reference(x_ref, *params).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-6, atol=1e-7)


def _saved_bytes(fn, inputs, autocast):
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            fn(*leaves).float().sum().backward()
    return total


@pytest.mark.parametrize("autocast", [False, True])
def test_saves_no_more_than_the_plain_path(autocast):
    inputs = _inputs((4, 8))
    fused = _saved_bytes(gelu_mlp, inputs, autocast)
    plain = _saved_bytes(gelu_mlp_reference, inputs, autocast)
    assert fused <= plain


def test_custom_ops_opcheck():
    """Schemas, fake (shape) functions and dispatch of the two ops, as torch.library checks them."""
    x, w_fc, b_fc, w_proj, _ = _inputs((8,))
    torch.library.opcheck(torch.ops.gpt2train.linear_gelu_aux.default, (x, w_fc, b_fc))
    dy = torch.randn(8, C)
    h = torch.randn(8, H)
    torch.library.opcheck(torch.ops.gpt2train.matmul_dgelu_bgrad.default, (dy, w_proj, h))
    torch.library.opcheck(torch.ops.gpt2train.matmul_dgelu.default, (dy, w_proj, h))
    with pytest.raises(ValueError, match="backward"):
        gelu_mlp(x, w_fc, b_fc, w_proj, _, backward="fused")


def test_ops_fall_back_off_cuda():
    before = dict(STATS["linear_gelu_aux"])
    gelu_mlp(*_inputs((8,)))
    assert STATS["linear_gelu_aux"]["torch"] == before["torch"] + 1
    assert STATS["linear_gelu_aux"]["cublaslt"] == before["cublaslt"]


@pytest.mark.parametrize("autocast", [False, True])
def test_compiled_aot_eager_no_graph_break(autocast):
    inputs = _inputs((2, 8), seed=4)
    leaves = [t.clone().requires_grad_() for t in inputs]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        explained = torch._dynamo.explain(gelu_mlp)(*leaves)
    assert explained.graph_break_count == 0
    torch._dynamo.reset()
    fn = torch.compile(gelu_mlp, backend="aot_eager", fullgraph=True)
    got, ref = _grads(fn, inputs, autocast), _grads(gelu_mlp_reference, inputs, autocast)
    tol = dict(rtol=2e-2, atol=2e-3) if autocast else dict(rtol=1e-6, atol=1e-7)
    for name, a, r in zip(NAMES, got, ref):
        assert a.dtype == r.dtype, name
        torch.testing.assert_close(a.float(), r.float(), **tol, msg=name)


def _cpp_compiler_works() -> bool:
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
        return True
    except Exception:
        return False


@pytest.mark.skipif(not _cpp_compiler_works(), reason="no C++ compiler for Inductor's CPU backend")
def test_compiled_inductor():
    inputs = _inputs((2, 8), seed=5)
    torch._dynamo.reset()
    fn = torch.compile(gelu_mlp, backend="inductor", fullgraph=True)
    got, ref = _grads(fn, inputs, autocast=True), _grads(gelu_mlp_reference, inputs, autocast=True)
    for name, a, r in zip(NAMES, got, ref):
        assert a.dtype == r.dtype, name
        torch.testing.assert_close(a.float(), r.float(), rtol=2e-2, atol=2e-3, msg=name)


# -- in the model and the trainer -----------------------------------------------------------------


def _loss_and_grads(model, cfg):
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, cfg.vocab_size, (2, 16), generator=g)
    tgt = torch.randint(0, cfg.vocab_size, (2, 16), generator=g)
    loss = model(idx, tgt)
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters()}


def test_in_a_model(tiny_config):
    """GPT with gelu_fusion on gives the plain model's loss and gradients; -r 1 keeps gelu_linear."""
    from gpt2train.model import build_model
    from gpt2train.train.accelerate import FastPaths, GeluFusedMLP, accelerate

    ref_model, fast_model = build_model(tiny_config, seed=1), build_model(tiny_config, seed=1)
    accelerate(fast_model, FastPaths(gelu_fusion=2))
    assert all(type(b.mlp) is GeluFusedMLP and b.mlp.backward == "dgelu" for b in fast_model.transformer.h)
    before = STATS["linear_gelu_aux"]["torch"]
    l_fast, g_fast = _loss_and_grads(fast_model, tiny_config)
    assert STATS["linear_gelu_aux"]["torch"] == before + tiny_config.n_layer
    l_ref, g_ref = _loss_and_grads(ref_model, tiny_config)
    torch.testing.assert_close(l_fast, l_ref, rtol=1e-6, atol=0)
    for n in g_ref:
        torch.testing.assert_close(g_fast[n], g_ref[n], rtol=1e-5, atol=1e-7, msg=n)

    accelerate(fast_model, FastPaths(recompute=1, gelu_fusion=1))
    before = STATS["linear_gelu_aux"]["torch"]
    _loss_and_grads(fast_model, tiny_config)
    assert STATS["linear_gelu_aux"]["torch"] == before  # -r 1's gelu_linear path, not gelu_mlp


def test_trainer_resolves_ge(tiny_config):
    """-ge -1 is 2 on the CUDA fast path and 0 elsewhere (resolve()), and the model's MLPs get what was resolved;
    an explicit -ge is kept, except where there is no GELU epilogue to fuse (FP8, a relu2 MLP)."""
    from gpt2train.config import Environment, TrainConfig, resolve
    from gpt2train.model import build_model
    from gpt2train.train.accelerate import FastPaths, GeluFusedMLP, accelerate

    shape = dict(model="d6", n_layer=tiny_config.n_layer, n_head=tiny_config.n_head, n_embd=tiny_config.n_embd,
                 max_seq_len=tiny_config.max_seq_len, seq_len=16, recompute=0)  # fmt: skip
    cuda = Environment(device=torch.device("cuda"), gpu_memory=80 * 2**30)

    def resolved(ge, fast, **fields):
        rc = resolve(TrainConfig(**shape, gelu_fusion=ge, plain=not fast, **fields), cuda)
        model = build_model(tiny_config)
        accelerate(model, FastPaths(recompute=rc.recompute, gelu_fusion=rc.gelu_fusion))
        mlp = model.transformer.h[0].mlp
        assert (type(mlp) is GeluFusedMLP) == bool(rc.gelu_fusion)
        assert getattr(mlp, "backward", "plain") == ("dgelu" if rc.gelu_fusion == 2 else "plain")
        return rc.gelu_fusion

    assert resolved(-1, fast=True) == 2 and resolved(-1, fast=False) == 0
    assert resolve(TrainConfig(**shape), Environment(device=torch.device("cpu"))).gelu_fusion == 0
    assert resolved(0, fast=True) == 0
    assert resolved(1, fast=False) == 1 and resolved(2, fast=False) == 2  # llm.c's -ge 1 forward, 2 and backward
    assert resolved(2, fast=True, mlp="relu2") == 0


@pytest.mark.parametrize("mlp", ["gelu", "relu2"])
def test_modern_model_takes_the_switch_where_it_applies(mlp):
    """train hands -ge to every model: a relu2 MLP (or a GELU one without biases, under RMSNorm) stays plain (the
    same loss, no fused matmul runs); a GELU MLP with biases under the modern levers is fused. The classifier
    handed over in the same call takes effect either way."""
    from gpt2train.config import ModelConfig
    from gpt2train.model import GPT
    from gpt2train.train.accelerate import FastPaths, accelerate

    cfg = ModelConfig(n_layer=1, n_head=2, n_embd=32, max_seq_len=16, mlp=mlp, pos="rotary", qk_norm=True,
                      logit_softcap=15.0)  # fmt: skip
    torch.manual_seed(0)
    model = GPT(cfg)
    idx = torch.randint(0, cfg.vocab_size, (2, 16))
    with torch.no_grad():
        ref = model(idx, idx)
    fused_before = STATS["linear_gelu_aux"]["torch"]
    accelerate(model, FastPaths(gelu_fusion=2, fused_classifier=True, classifier_chunk=7))
    assert model.classifier_loss.keywords == {"chunk_rows": 7}
    with torch.no_grad():
        got = model(idx, idx)
    assert STATS["linear_gelu_aux"]["torch"] == fused_before + (mlp == "gelu")
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)
    rms = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=32, max_seq_len=16, mlp="gelu", norm="rmsnorm"))
    accelerate(rms, FastPaths(gelu_fusion=2))
    assert type(rms.transformer.h[0].mlp).__name__ == "MLP"  # no biases for the epilogue: plain


# -- the cuBLASLt binding, without a GPU ----------------------------------------------------------


def test_enum_values_and_struct_sizes():
    """Values as cublasLt.h / cublas_api.h / library_types.h define them (see cublaslt's docstring)."""
    assert cublaslt.CUBLASLT_EPILOGUE_GELU_AUX_BIAS == 164
    assert cublaslt.CUBLASLT_EPILOGUE_DGELU_BGRAD == 208
    assert cublaslt.CUBLASLT_EPILOGUE_DEFAULT == 1
    assert (cublaslt.CUBLAS_COMPUTE_32F, cublaslt.CUDA_R_32F, cublaslt.CUDA_R_16BF, cublaslt.CUDA_R_16F) == (
        68,
        0,
        14,
        2,
    )
    assert (cublaslt.CUBLASLT_MATMUL_DESC_TRANSA, cublaslt.CUBLASLT_MATMUL_DESC_TRANSB) == (3, 4)
    assert cublaslt.CUBLASLT_MATMUL_DESC_EPILOGUE == 7
    assert cublaslt.CUBLASLT_MATMUL_DESC_BIAS_POINTER == 8
    assert (cublaslt.CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, cublaslt.CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD) == (
        11,
        12,
    )
    assert cublaslt.CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE == 26
    assert cublaslt.CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES == 1
    assert ctypes.sizeof(cublaslt.CublasLtAlgo) == 64
    assert ctypes.sizeof(cublaslt.CublasLtHeuristicResult) == 96


def _colmajor(buf: torch.Tensor, rows: int, cols: int, ld: int) -> torch.Tensor:
    """How cuBLASLt reads a flat buffer: column-major (rows, cols) with leading dimension ld."""
    return buf.as_strided((rows, cols), (1, ld))


@pytest.mark.parametrize("w_transposed", [True, False])
def test_plan_row_major_computes_the_row_major_product(w_transposed):
    """Evaluate the plan as cuBLASLt would (column-major buffers, op(A) op(B), bias and aux per
    row of D) and compare with the row-major product."""
    M, N, K = 6, 5, 3
    g = torch.Generator().manual_seed(0)
    x = torch.randn(M, K, generator=g, dtype=torch.float64)
    w = torch.randn((N, K) if w_transposed else (K, N), generator=g, dtype=torch.float64)
    bias = torch.randn(N, generator=g, dtype=torch.float64)
    want = x @ (w.t() if w_transposed else w) + bias

    p = cublaslt.plan_row_major(M, N, K, w_transposed)
    assert (p.m, p.n, p.k) == (N, M, K) and p.bias_len == N and p.aux_ld == N
    a = _colmajor(w.flatten(), *p.a_layout)
    b = _colmajor(x.flatten(), *p.b_layout)
    op = {cublaslt.CUBLAS_OP_N: lambda t: t, cublaslt.CUBLAS_OP_T: lambda t: t.t()}
    d = op[p.transa](a) @ op[p.transb](b)
    assert d.shape == (p.m, p.n) == (p.d_layout[0], p.d_layout[1])
    d = d + bias[:, None]  # the epilogue's bias: one value per row of D
    out = torch.empty(M * N, dtype=torch.float64)
    _colmajor(out, *p.d_layout).copy_(d)
    torch.testing.assert_close(out.view(M, N), want)  # D's buffer is the row-major Y
    # the DGELU_BGRAD bias gradient sums D over its columns: the row-major sum over rows
    torch.testing.assert_close(d.sum(1), want.sum(0))


def test_desc_attributes():
    p = cublaslt.plan_row_major(32, 24, 16, True)
    got = {a: v.value for a, v in cublaslt.desc_attributes(p, cublaslt.CUBLASLT_EPILOGUE_GELU_AUX_BIAS, torch.bfloat16)}
    assert got == {3: cublaslt.CUBLAS_OP_T, 4: cublaslt.CUBLAS_OP_N, 7: 164, 26: 14, 12: 24}
    types_ = {a: type(v) for a, v in cublaslt.desc_attributes(p, cublaslt.CUBLASLT_EPILOGUE_DGELU_BGRAD, torch.float16)}
    assert types_ == {3: ctypes.c_int32, 4: ctypes.c_int32, 7: ctypes.c_uint32, 26: ctypes.c_int32, 12: ctypes.c_int64}
    plain = cublaslt.desc_attributes(p, cublaslt.CUBLASLT_EPILOGUE_DEFAULT, torch.bfloat16)
    assert [a for a, _ in plain] == [3, 4, 7]


def test_helpers():
    assert cublaslt.cuda_dtype(torch.bfloat16) == 14 and cublaslt.cuda_dtype(torch.float32) == 0
    with pytest.raises(ValueError):
        cublaslt.cuda_dtype(torch.int8)
    assert [cublaslt.alignment(p) for p in (0, 4096, 4096 + 16, 2)] == [256, 256, 16, 2]
    assert cublaslt.shapes_supported(8192, 3072, 768) and not cublaslt.shapes_supported(8, 12, 8)
    cublaslt.check(0, "cublasLtCreate")
    with pytest.raises(RuntimeError, match="cublasLtMatmul failed: CUBLAS_STATUS_NOT_SUPPORTED"):
        cublaslt.check(15, "cublasLtMatmul")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")
def test_loader_without_cuda():
    assert not cublaslt.available("cpu")
    assert not cublaslt.available()
    if torch.version.cuda is None:
        assert cublaslt.load() is None
        assert "not a CUDA build" in cublaslt.load_error()
        with pytest.raises(RuntimeError, match="cuBLASLt unavailable"):
            cublaslt.require()
    cands = cublaslt.library_candidates()
    assert "libcublasLt.so.13" in cands and "libcublasLt.so.12" in cands


class _FakeLt:
    """Stands in for libcublasLt: records each call and fills the out-parameters as the C API does."""

    def __init__(self, algos=1):
        self.calls: list[tuple] = []
        self.algos = algos
        self.next = 100

    def _new(self, out):
        self.next += 1
        out._obj.value = self.next
        return 0

    def __getattr__(self, name):
        def fn(*args):
            self.calls.append((name, args))
            if name in ("cublasLtMatmulDescCreate", "cublasLtMatrixLayoutCreate", "cublasLtMatmulPreferenceCreate"):
                return self._new(args[0])
            if name == "cublasLtMatmulDescSetAttribute":
                self.calls[-1] = (name, (args[1], args[2]._obj.value))  # the value, read at call time
            if name == "cublasLtMatmulAlgoGetHeuristic":
                args[-2]._obj.workspaceSize = 4096
                args[-1]._obj.value = self.algos
            return 0

        return fn

    def named(self, name):
        return [a for n, a in self.calls if n == name]


@pytest.fixture
def fake_lt(monkeypatch):
    fake = _FakeLt()
    monkeypatch.setattr(cublaslt, "_lib", fake)
    monkeypatch.setattr(cublaslt, "_devices", {None: types.SimpleNamespace(handle=7, workspace_ptr=8, plans={})})
    monkeypatch.setattr(torch.cuda, "current_device", lambda: None)
    monkeypatch.setattr(torch.cuda, "device", lambda i: __import__("contextlib").nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda d=None: types.SimpleNamespace(cuda_stream=9))
    monkeypatch.setattr(cublaslt, "alignment", lambda ptr: 256)  # CPU tensors vary; CUDA's allocator gives 512
    return fake


def test_matmul_call_sequence(fake_lt):
    """The Python glue of cublaslt.matmul, against a fake library: descriptors built once per
    shape, pointers set on every call, the arguments of cublasLtMatmul in the C API's order."""
    M, N, K = 16, 24, 8
    x, w = torch.zeros(M, K, dtype=torch.bfloat16), torch.zeros(N, K, dtype=torch.bfloat16)
    bias, aux = torch.zeros(N, dtype=torch.bfloat16), torch.zeros(M, N, dtype=torch.bfloat16)
    ep = cublaslt.CUBLASLT_EPILOGUE_GELU_AUX_BIAS
    out = cublaslt.matmul(x, w, epilogue=ep, bias=bias, aux=aux)
    assert out.shape == (M, N) and out.dtype == torch.bfloat16
    assert fake_lt.named("cublasLtMatrixLayoutCreate")[0][1:] == (14, K, N, K)  # A: W^T, bf16
    assert [a[1:] for a in fake_lt.named("cublasLtMatrixLayoutCreate")[1:]] == [(14, K, M, K), (14, N, M, N)]
    attrs = dict(fake_lt.named("cublasLtMatmulDescSetAttribute"))
    assert attrs[7] == 164 and attrs[3] == cublaslt.CUBLAS_OP_T and attrs[12] == N
    assert attrs[8] == bias.data_ptr() and attrs[11] == aux.data_ptr()
    (mm,) = fake_lt.named("cublasLtMatmul")
    assert mm[0] == 7 and mm[3] == w.data_ptr() and mm[5] == x.data_ptr()
    assert mm[8] == mm[10] == out.data_ptr() and mm[13:] == (8, 4096, 9)

    fake_lt.calls.clear()
    bias2 = torch.zeros(N, dtype=torch.bfloat16)
    cublaslt.matmul(x, w, epilogue=ep, bias=bias2, aux=aux)
    assert [n for n, _ in fake_lt.calls] == ["cublasLtMatmulDescSetAttribute"] * 2 + ["cublasLtMatmul"]
    assert dict(fake_lt.named("cublasLtMatmulDescSetAttribute"))[8] == bias2.data_ptr()


def test_matmul_without_an_algorithm(fake_lt):
    fake_lt.algos = 0
    x, w = torch.zeros(8, 8, dtype=torch.bfloat16), torch.zeros(8, 8, dtype=torch.bfloat16)
    for _ in range(2):  # the second time from the cache, without asking the heuristic again
        with pytest.raises(cublaslt.CublasLtUnsupported):
            cublaslt.matmul(x, w, w_transposed=False)
    assert len(fake_lt.named("cublasLtMatmulAlgoGetHeuristic")) == 1
    assert not fake_lt.named("cublasLtMatmul")


def test_bad_ge_is_a_one_line_error(tmp_path, text_shards, capsys):
    from tests.helpers import run_cli, tiny_train_args

    code, _, err = run_cli(tiny_train_args(text_shards, tmp_path, 1, ["-ge", "3"]), capsys)
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "-ge 3" in lines[0], err
