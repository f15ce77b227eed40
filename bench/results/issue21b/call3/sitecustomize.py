# A/B switch for issue 21's device calls (not part of the product): EXP_CAST=inductor gives --fp8's casts back to
# Inductor (the reference, compiled) instead of kernels/fp8_cast.py's kernel
import os

if os.environ.get("EXP_CAST") == "inductor":
    import gpt2train.kernels.fp8_linear as _f
    from gpt2train.kernels.fp8_cast import cast_transpose_reference as _ref

    _f.cast_transpose = _ref
