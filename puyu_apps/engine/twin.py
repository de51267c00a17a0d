"""The transformers copy of a fast backend's weights, for code that needs torch modules (losses, training).

Both fast backends (llama.cpp, the torch static engine) decode from their own weights; ``lm.model`` and
``lm.adapters.use(name)`` give a transformers model with the same adapters, loaded on first use.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..core.adapters import AdapterSet


class TransformersTwin:
    """Mixin for a fast backend's adapter set. Needs ``owner`` (with ``_load_twin()`` and ``_merged_paths``),
    ``base_name``, ``merged``, ``paths`` and ``_check(name)``; call :meth:`_init_twin` in ``__init__``."""

    owner: Any
    base_name: str
    merged: list[str]
    paths: dict[str, Path]

    def _init_twin(self) -> None:
        self._twin: AdapterSet | None = None
        self._twin_lock = threading.Lock()

    def _check(self, name: str) -> None:  # pragma: no cover - every backend defines it
        raise NotImplementedError

    @property
    def twin(self) -> AdapterSet:
        with self._twin_lock:
            if self._twin is None:
                twin = AdapterSet(self.owner._load_twin().model, self.base_name)
                for name in self.merged:
                    twin.load(name, self.owner._merged_paths[name])
                    twin.merge(name)
                for name, path in dict(self.paths).items():
                    twin.load(name, path)
                self._twin = twin
            return self._twin

    @property
    def model(self) -> Any:
        return self.twin.model

    @contextmanager
    def use(self, name: str | None) -> Iterator[Any]:
        """The transformers model with adapter ``name`` active (for losses and training-side code)."""
        if name is not None:
            self._check(name)
        with self.twin.use(name) as m:
            yield m
