# Experiment switches for issue 21's device calls (not part of the product), read when the trainer's Python starts:
#   EXP_CAST=triton_op  the cast kernel behind torch.library.triton_op (Inductor launches it from its own code,
#                       no dispatcher round trip), dynamic scaling only (with an amax record: the custom op)
import os
import sys

if os.environ.get("EXP_CAST"):
    try:
        import torch

        import gpt2train.kernels.fp8_linear as _f
        from gpt2train.kernels import fp8_cast as _fc

        if os.environ.get("EXP_CAST") == "triton_op":
            from torch.library import triton_op, wrap_triton

            KERN = _fc._kernel(False)
            FMAX = {torch.float8_e4m3fn: 448.0, torch.float8_e5m2: 57344.0}

            @triton_op("gpt2exp::cast_t", mutates_args=())
            def _cast_t(
                t: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype, transpose: bool
            ) -> tuple[torch.Tensor, torch.Tensor]:
                m, n = t.shape
                q = torch.empty((m, n), dtype=dtype, device=t.device)
                qt = torch.empty((n, m) if transpose else (1, 1), dtype=dtype, device=t.device)
                wrap_triton(KERN)[((m + 63) // 64, (n + 63) // 64)](
                    t,
                    scale,
                    q,
                    qt,
                    scale,
                    m,
                    n,
                    FMAX[dtype],
                    WRITE_T=transpose,
                    AMAX=False,
                    BLOCK_M=64,
                    BLOCK_N=64,
                    num_warps=4,
                )
                return q, qt

            _orig = _f.cast_transpose

            def _via_op(t, scale, dtype, transpose=True, amax=None):
                if amax is not None or t.dtype not in _fc.KERNEL_SOURCES or not t.is_cuda:
                    return _orig(t, scale, dtype, transpose, amax)
                q, qt = _cast_t(t.contiguous(), scale, dtype, transpose)
                return q, (qt if transpose else None)

            _f.cast_transpose = _via_op
        print(f"EXP_CAST={os.environ.get('EXP_CAST')}: set", file=sys.stderr, flush=True)
    except ModuleNotFoundError:  # a process without gpt2train on its path (the bench driver itself)
        pass
