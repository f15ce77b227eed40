"""What a CUDA run starts ahead of its first step, so that the step does not wait for it: the compile workers. It
matters on a machine just booted (bench startup's cold start: BENCHMARKS.md "Start-up")."""

from __future__ import annotations


def start_compile_workers() -> None:
    """Start Inductor's compile workers now, while the model and data are made: a pool not yet up when the first
    step compiles leaves every kernel of that compilation to this process, one after another (torch starts it only
    at the first compilation, and on a cold machine its workers take seconds to import torch)."""
    try:
        from torch._inductor.async_compile import maybe_warm_pool
    except ImportError:  # a torch without it starts its pool at the first compilation, as before
        return
    maybe_warm_pool()
