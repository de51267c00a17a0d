"""Typed errors of the torch static engine."""

from __future__ import annotations

from ...errors import ModelLoadError


class UnsupportedModelError(ModelLoadError):
    """The model is valid, but the torch static engine cannot run it (architecture, rotary scaling, activation).
    The message says what; ``backend="transformers"`` runs every model transformers can load."""


class KernelCheckError(ModelLoadError):
    """``kernels="triton"`` was asked for and the kernels failed their start-up check on this device (they did
    not compile, or disagreed with the torch ops). The message says which; ``kernels="torch"`` runs without them."""
