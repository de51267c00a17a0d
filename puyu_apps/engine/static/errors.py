"""Typed errors of the torch static engine."""

from __future__ import annotations

from ...errors import ModelLoadError


class UnsupportedModelError(ModelLoadError):
    """The model is valid, but the torch static engine cannot run it (architecture, rotary scaling, activation).
    The message says what; ``backend="transformers"`` runs every model transformers can load."""
