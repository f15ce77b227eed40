"""The kernels registry and the classifier switch."""

from __future__ import annotations

import importlib

import torch

from gpt2train import kernels
from gpt2train.kernels.fused_classifier import plain_classifier_loss


def test_registry_points_at_real_callables():
    for info in kernels.KERNELS.values():
        for dotted in (info.fast, info.reference):
            mod, _, attr = dotted.rpartition(".")
            assert callable(getattr(importlib.import_module(mod), attr)), dotted
    assert set(kernels.available()) == set(kernels.KERNELS)


def test_select_classifier_loss():
    assert kernels.select_classifier_loss(False) is plain_classifier_loss
    assert kernels.select_classifier_loss(True) is kernels.chunked_classifier_loss
    fn = kernels.select_classifier_loss(True, chunk_rows=3)
    x, w = torch.randn(10, 8), torch.randn(16, 8)
    t = torch.randint(0, 13, (10,))
    torch.testing.assert_close(fn(x, w, t, 13), plain_classifier_loss(x, w, t, 13))
