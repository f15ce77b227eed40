# issue 21, tenth session, call 5: G2T_OLD_CAST=1 puts back the cast kernel of 35ae78b (one 64x64 tile per program,
# an amax atomic per tile) for an A/B in the trainer
import os

if os.environ.get("G2T_OLD_CAST") == "1":
    import functools

    from gpt2train.kernels import fp8_cast
    from gpt2train.kernels._triton import interpreting

    @functools.lru_cache(maxsize=2)
    def _kernel(interpret):
        import triton
        import triton.language as tl

        @triton.jit
        def old_fp8_cast_transpose_kernel(x_ptr, scale_ptr, q_ptr, qt_ptr, amax_ptr, M, N, fmax, WRITE_T: tl.constexpr,
                                          AMAX: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
            rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
            cols = tl.program_id(1).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
            mask = (rows[:, None] < M) & (cols[None, :] < N)
            x = tl.load(x_ptr + rows[:, None] * N + cols[None, :], mask=mask, other=0.0).to(tl.float32)
            if AMAX:
                tl.atomic_max(amax_ptr, tl.max(tl.abs(x)))
            y = tl.clamp(x * tl.load(scale_ptr), -fmax, fmax)
            q = y.to(q_ptr.dtype.element_ty)
            tl.store(q_ptr + rows[:, None] * N + cols[None, :], q, mask=mask)
            if WRITE_T:
                tl.store(qt_ptr + cols[None, :] * M + rows[:, None], q, mask=mask)

        return old_fp8_cast_transpose_kernel

    def _launch(t, scale, q, qt, amax=None, block_m=64, block_n=64, warps=4, programs=None):
        m, n = t.shape
        grid = ((m + block_m - 1) // block_m, (n + block_n - 1) // block_n)
        _kernel(interpreting())[grid](t, scale, q, q if qt is None else qt, scale if amax is None else amax, m, n,
                                      torch_finfo_max(q.dtype), WRITE_T=qt is not None, AMAX=amax is not None,
                                      BLOCK_M=block_m, BLOCK_N=block_n, num_warps=warps)

    def torch_finfo_max(dtype):
        import torch

        return torch.finfo(dtype).max

    fp8_cast._launch = _launch
    print("sitecustomize: the cast kernel of 35ae78b", flush=True)
