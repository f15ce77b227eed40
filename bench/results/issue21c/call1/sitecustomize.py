# Experiment switches for issue 21's device calls (not part of the product), read when the trainer's Python starts:
#   EXP_SOURCES=all   --fp8-cast-kernel 1 sends fp32 operands (LayerNorm outputs, fp32 weights) through the kernel too
#   EXP_CAST=triton_op the kernel behind torch.library.triton_op (Inductor sees and launches it)
import os
import sys

if os.environ.get("EXP_SOURCES") or os.environ.get("EXP_CAST"):
    try:
        import torch

        import gpt2train.kernels.fp8_linear as _f
        from gpt2train.kernels import fp8_cast as _fc

        if os.environ.get("EXP_SOURCES") == "all":
            _fc.KERNEL_SOURCES = (torch.bfloat16, torch.float32)
        if os.environ.get("EXP_CAST") == "triton_op":
            from torch.library import triton_op, wrap_triton

            KERN = _fc._kernel(False)
            FMAX = {torch.float8_e4m3fn: 448.0, torch.float8_e5m2: 57344.0}

            @triton_op("gpt2exp::cast_t", mutates_args=())
            def _cast_t(t: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
                m, n = t.shape
                q = torch.empty((m, n), dtype=dtype, device=t.device)
                qt = torch.empty((n, m), dtype=dtype, device=t.device)
                wrap_triton(KERN)[((m + 63) // 64, (n + 63) // 64)](
                    t,
                    scale,
                    q,
                    qt,
                    m,
                    n,
                    FMAX[dtype],
                    WRITE_T=True,
                    T_BY_ADDRESS=True,
                    BLOCK_M=64,
                    BLOCK_N=64,
                    num_warps=4,
                )
                return q, qt

            def _via_op(t, scale, dtype, transpose=True):
                if not transpose or t.dtype not in _fc.KERNEL_SOURCES:
                    return _fc.cast_transpose_reference(t, scale, dtype, transpose)
                return _cast_t(t.contiguous(), scale, dtype)

            _f.cast_transpose = _via_op
        print(
            f"EXP_SOURCES={os.environ.get('EXP_SOURCES')} EXP_CAST={os.environ.get('EXP_CAST')}: set",
            file=sys.stderr,
            flush=True,
        )
    except ModuleNotFoundError:  # a process without gpt2train on its path (the bench driver itself)
        pass
