"""Optional dependencies: each is imported through ``require``, which turns a missing package into a one-line
error naming the gpt2train extra that installs it (pyproject.toml's [project.optional-dependencies])."""

from __future__ import annotations

import importlib
from types import ModuleType

from gpt2train.errors import UserError


def require(module: str, extra: str, what: str) -> ModuleType:
    """``import module``, or a UserError saying that ``what`` needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise UserError(f"{what} needs the package {package}: pip install 'gpt2train[{extra}]'") from None
