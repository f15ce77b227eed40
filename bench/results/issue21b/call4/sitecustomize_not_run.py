# Experiment switches for issue 21's device calls (not part of the product), read when the trainer's Python starts:
#   EXP_CAST=inductor  --fp8's casts compiled by Inductor (the reference) instead of kernels/fp8_cast.py's op
#   EXP_CAST=debug     the op as is, each launch compared with the reference, bit for bit (stderr lines)
#   EXP_CAST=direct    the Triton kernel launched straight from the traced code (Dynamo's user-kernel support)
#   EXP_CAST=triton_op the kernel behind torch.library.triton_op (Inductor sees and launches it)
import os
import sys

MODE = os.environ.get("EXP_CAST", "")
if MODE:
    try:
        import torch

        import gpt2train.kernels.fp8_linear as _f
        from gpt2train.kernels import fp8_cast as _fc

        FMAX = {torch.float8_e4m3fn: 448.0, torch.float8_e5m2: 57344.0}
        if MODE == "inductor":
            _f.cast_transpose = _fc.cast_transpose_reference
        elif MODE == "debug":
            _orig, _n = _fc._launch, [0]

            def _debug(t, scale, q, qt, *a, **k):
                _orig(t, scale, q, qt, *a, **k)
                _n[0] += 1
                if _n[0] > 600:
                    return
                rq, rqt = _fc.cast_transpose_reference(t, scale, q.dtype, qt is not None)
                bad = (q.view(torch.uint8) != rq.view(torch.uint8)).sum().item()
                badt = -1 if qt is None else (qt.view(torch.uint8) != rqt.view(torch.uint8)).sum().item()
                nonfinite = (~torch.isfinite(t)).sum().item()
                if bad or badt > 0 or nonfinite or _n[0] <= 14:
                    import threading

                    print(f"cast#{_n[0]} {tuple(t.shape)} {t.dtype} stride={t.stride()} off={t.storage_offset()} "
                          f"ptr%16={t.data_ptr() % 16} scale={scale.item()!r} {scale.device} {tuple(scale.shape)} "
                          f"-> {q.dtype} bad={bad} badt={badt} nonfinite_in={nonfinite} "
                          f"thread={threading.current_thread().name} stream={torch.cuda.current_stream().cuda_stream}",
                          file=sys.stderr, flush=True)

            _fc._launch = _debug
        elif MODE in ("direct", "triton_op"):
            KERN = _fc._kernel(False)

            def _direct(t, scale, dtype, transpose=True):
                t = t.contiguous()
                m, n = t.shape
                q = torch.empty((m, n), dtype=dtype, device=t.device)
                qt = torch.empty((n, m), dtype=dtype, device=t.device) if transpose else q
                KERN[((m + 63) // 64, (n + 63) // 64)](t, scale, q, qt, m, n, FMAX[dtype], WRITE_T=transpose,
                                                        BLOCK_M=64, BLOCK_N=64, num_warps=4)
                return q, (qt if transpose else None)

            if MODE == "direct":
                _f.cast_transpose = _direct
            else:
                from torch.library import triton_op, wrap_triton

                @triton_op("gpt2exp::cast_t", mutates_args=())
                def _cast_t(t: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
                    m, n = t.shape
                    q = torch.empty((m, n), dtype=dtype, device=t.device)
                    qt = torch.empty((n, m), dtype=dtype, device=t.device)
                    wrap_triton(KERN)[((m + 63) // 64, (n + 63) // 64)](t, scale, q, qt, m, n, FMAX[dtype],
                                                                        WRITE_T=True, BLOCK_M=64, BLOCK_N=64,
                                                                        num_warps=4)
                    return q, qt

                def _via_op(t, scale, dtype, transpose=True):
                    if not transpose:
                        return _fc.cast_transpose_reference(t, scale, dtype, False)
                    return _cast_t(t.contiguous(), scale, dtype)

                _f.cast_transpose = _via_op
        print(f"EXP_CAST={MODE}: set", file=sys.stderr, flush=True)
    except ModuleNotFoundError:  # a process without gpt2train on its path (the bench driver itself)
        pass
