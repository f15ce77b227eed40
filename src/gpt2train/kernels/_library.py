"""Our custom ops, registered with torch.library with one Python call a dispatch.

``torch.library.custom_op`` wraps an op's function in Python kernels for autograd and in-place views as well as
its own: on this repository's CPU about 40 us a call, where the dispatcher calling the function directly costs
about 5; on an H200 machine's, 18 us of the FP8 cast's 75 (``python bench/kernels_gpu_check.py --checks
op_overhead``; BENCHMARKS.md). The trainer's FP8 step calls our cast ops about 1,170 times at d12, on the host
path that feeds the GPU. None of our ops needs those wrappers: each is called on tensors that need no gradient
(inside an autograd.Function, or on detached tensors), and torch.compile treats the op as opaque either way.

:func:`op` defines the op from the function's signature (``torch.library.infer_schema``, custom_op's own
inference, so the schema is the one custom_op would write), registers the function for the CPU and CUDA, and
returns the op (an ``OpOverload``): calls go through the dispatcher, so torch.compile sees the op and traces it
with the shape function given to ``torch.library.register_fake``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

_LIBRARIES: dict[str, torch.library.Library] = {}  # kept alive: a Library's registrations go with it
FUNCTIONS: dict[str, Callable] = {}  # qualname -> the function registered (bench/kernels_gpu_check.py's op_overhead)


def op(qualname: str, mutates_args: Sequence[str] = ()) -> Callable[[Callable], torch._ops.OpOverload]:
    """Decorator: the function as the op ``namespace::name`` for CPU and CUDA tensors; ``mutates_args`` names the
    arguments it writes into (as custom_op's). Returns ``torch.ops.namespace.name.default``."""
    namespace, name = qualname.split("::")

    def register(fn: Callable) -> torch._ops.OpOverload:
        if namespace not in _LIBRARIES:
            _LIBRARIES[namespace] = torch.library.Library(namespace, "FRAGMENT")
        library = _LIBRARIES[namespace]
        # tagged as custom_op tags its ops: opcheck (tests/test_kernels_library.py) holds each to it
        schema = name + torch.library.infer_schema(fn, mutates_args=tuple(mutates_args))
        library.define(schema, tags=(torch.Tag.pt2_compliant_tag,))
        for key in ("CPU", "CUDA"):
            library.impl(name, fn, key)
        FUNCTIONS[qualname] = fn
        return getattr(getattr(torch.ops, namespace), name).default

    return register
