"""What a safetensors file holds (names, dtypes, shapes), read from its header alone, and the check of that
against the shapes a config implies: every reader of a model makes it before it allocates a tensor, so a file
whose config claims more than the file holds is a one-line error, not gigabytes allocated first."""

from __future__ import annotations

import os

from gpt2train.errors import UserError


def safetensors_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """{tensor name: shape} from a safetensors header; a damaged file is a UserError naming it."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"model file {path} is unreadable or corrupt ({e}); re-create or re-download it") from None


def check_shapes(found: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]], source: str) -> None:
    """UserError naming ``source`` unless ``found`` holds exactly the tensors of ``expected``, shape for shape."""
    for name, shape in expected.items():
        if name not in found:
            raise UserError(f"{source}: tensor {name} is missing: the weights do not belong to this config")
        if tuple(found[name]) != tuple(shape):
            raise UserError(
                f"{source}: tensor {name} has shape {tuple(found[name])}, but the config implies {tuple(shape)}: "
                "the weights do not belong to this config"
            )
    extra = sorted(set(found) - set(expected))
    if extra:
        raise UserError(f"{source}: tensors the config has no place for ({', '.join(extra[:3])}"
                        f"{', ...' if len(extra) > 3 else ''}): the weights do not belong to this config")  # fmt: skip


def check_size_for(num_params: int, file_bytes: int, source: str) -> None:
    """A cheap first check: a config whose parameters need more bytes (2 each, bf16) than the files hold."""
    if num_params * 2 > file_bytes:
        raise UserError(
            f"{source}: the config describes {num_params:,} parameters, more than the {file_bytes:,} bytes of "
            "weights can hold: the weights do not belong to this config"
        )
