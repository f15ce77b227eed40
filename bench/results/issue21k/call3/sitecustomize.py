# ruff: noqa  (the script as it ran, formatted by ruff)
# issue 21 eleventh session: G2T_GELU_TILE="bm,bn,warps,waves" sets the cast kernel's GELU passes' launch config
import os

if os.environ.get("G2T_GELU_TILE"):
    from gpt2train.kernels import fp8_cast

    fp8_cast.GELU_BLOCK_M, fp8_cast.GELU_BLOCK_N, fp8_cast.GELU_WARPS, fp8_cast.GELU_WAVES = map(
        int, os.environ["G2T_GELU_TILE"].split(",")
    )
