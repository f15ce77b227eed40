"""Our custom ops as kernels/_library.py registers them: torch.library's checks of each op's schema, shape
function and dispatch; the function called straight from the dispatcher (no Python wrapper between); an op's
writes seen by its caller, eager and compiled."""

from __future__ import annotations

import inspect

import pytest
import torch

from gpt2train.kernels import _library, fp8_cast, grad_accum
from gpt2train.kernels.fp8_linear import E4M3, E5M2


def _samples() -> dict:
    """Arguments for each op (CPU tensors: the ops' reference paths)."""
    gen = torch.Generator().manual_seed(0)

    def bf16(*shape):
        return torch.randn(*shape, generator=gen).to(torch.bfloat16)

    scale = torch.tensor(2.0)
    qkv = [bf16(2, 2, 16, 16) for _ in range(3)]
    return {
        "gpt2train::fp8_cast_transpose": [(bf16(32, 16), scale, E4M3, True, torch.zeros(())),
                                          (bf16(32, 16), scale, E5M2, False, None)],
        "gpt2train::fp8_transpose": [(bf16(16, 32).to(E4M3),)],
        "gpt2train::fp8_grad_cast_transpose": [(bf16(32, 16), scale, E4M3, torch.zeros(())),
                                               (bf16(32, 16), scale, E5M2, None)],
        "gpt2train::fp8_activation_cast_transpose": [(bf16(32, 64), bf16(64), None, scale, E4M3, torch.zeros(()),
                                                      "gelu"),
                                                     (bf16(32, 64), None, bf16(32, 64), scale, E4M3, None, "relu2")],
        "gpt2train::fp8_qkv_grad_cast_transpose": [(*qkv, scale, E4M3, torch.zeros(()))],
        "gpt2train::fp8_ln_cast_transpose": [(bf16(32, 16), bf16(32, 16), torch.randn(16), torch.randn(16), 1e-5, scale,
                                              E4M3, torch.zeros(())),
                                             (bf16(32, 16), None, torch.randn(16), None, 1e-5, scale, E5M2, None)],
        "gpt2train::addmm_into": [(torch.randn(8, 4), torch.randn(8, 16), torch.randn(16, 4))],
    }  # fmt: skip


@pytest.mark.parametrize("qualname", sorted(_samples()))
def test_opcheck(qualname):
    """torch.library.opcheck: the schema matches what the op does (its writes included), the shape function
    matches its outputs, and it dispatches under AOTAutograd as torch.compile runs it."""
    namespace, name = qualname.split("::")
    tests = ["test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic"]
    if name == "fp8_transpose":  # the schema test multiplies the inputs, which torch cannot do on an FP8 tensor
        tests.remove("test_schema")
    for args in _samples()[qualname]:
        torch.library.opcheck(getattr(getattr(torch.ops, namespace), name).default, args, test_utils=tests)


def test_every_op_is_registered_through_the_lean_path():
    """The ops named above are all of _library's (the gelu_mlp ops have their own opcheck test) and are called
    through the dispatcher: the module attribute is the op itself."""
    assert set(_samples()) | {"gpt2train::linear_gelu_aux", "gpt2train::matmul_dgelu_bgrad",
                              "gpt2train::matmul_dgelu"} == set(_library.FUNCTIONS)  # fmt: skip
    assert fp8_cast.cast_transpose_kernel is torch.ops.gpt2train.fp8_cast_transpose.default
    assert grad_accum.addmm_into is torch.ops.gpt2train.addmm_into.default


def test_the_dispatcher_calls_the_function_directly():
    """No Python frame between the op's caller and the function (custom_op puts its autograd and view wrappers
    there, about 40 us a call on a CPU); the schema is custom_op's inference, a write declared."""
    callers = []

    @_library.op("gpt2train_test::probe", mutates_args=("out",))
    def probe(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        frame = inspect.currentframe().f_back
        while frame.f_code.co_filename != __file__:
            callers.append(frame.f_code.co_filename)
            frame = frame.f_back
        out.add_(1)
        return x * 2

    x, out = torch.ones(3), torch.zeros(3)
    y = probe(x, out)
    assert callers == [torch._ops.__file__]  # OpOverload.__call__, then the dispatcher, then the function
    assert torch.equal(y, x * 2) and torch.equal(out, torch.ones(3))
    assert str(probe._schema) == "gpt2train_test::probe(Tensor x, Tensor(a1!) out) -> Tensor"


def test_compiled_op_writes_and_returns_as_eager():
    """Under torch.compile (one graph), the cast op's outputs and its amax write equal eager's."""
    t = torch.randn(64, 32).to(torch.bfloat16)
    scale = torch.tensor(4.0)

    def cast(t, amax):
        q, qt = fp8_cast.cast_transpose_kernel(t * 2, scale, E4M3, True, amax)
        return q.float() + 1, qt

    eager_amax, compiled_amax = torch.zeros(()), torch.zeros(())
    want = cast(t, eager_amax)
    try:
        got = torch.compile(cast, backend="aot_eager", fullgraph=True)(t, compiled_amax)
    finally:
        torch._dynamo.reset()
    assert torch.equal(got[0], want[0]) and torch.equal(got[1].view(torch.uint8), want[1].view(torch.uint8))
    assert compiled_amax.item() == eager_amax.item() == (t.float() * 2).abs().max().item()
