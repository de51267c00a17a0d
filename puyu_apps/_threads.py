"""Thread settings that are safe beside tesseract's ``OMP_THREAD_LIMIT``.

With ``OMP_THREAD_LIMIT=1`` in the environment (tesseract's own advice, and common in OCR deployments), asking
torch for more OpenMP threads than the limit makes libgomp spin forever in the first convolution backward pass
(seen with torch 2.13 CPU: ``OMP_THREAD_LIMIT=1`` + ``torch.set_num_threads(2)`` hangs). Every place in the
package that sets torch's thread count goes through :func:`set_torch_threads`, which never exceeds the limit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping


def omp_thread_limit() -> int | None:
    """The ``OMP_THREAD_LIMIT`` libgomp will obey, or None when unset or not a positive integer."""
    raw = os.environ.get("OMP_THREAD_LIMIT", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def safe_thread_count(n: int) -> int:
    """``n`` clamped to ``[1, OMP_THREAD_LIMIT]``."""
    limit = omp_thread_limit()
    return max(1, min(n, limit) if limit else n)


def set_torch_threads(n: int) -> int:
    """Set torch's intra-op threads to ``n`` (clamped, see the module doc); returns what was set."""
    import torch

    n = safe_thread_count(n)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


class EnvOverlay(Mapping[str, str]):
    """``os.environ`` as it is at each read, with some keys overridden: an ``env=`` for child processes that
    needs one setting without changing this process's environment."""

    def __init__(self, **overrides: str) -> None:
        self.overrides = overrides

    def _merged(self) -> dict[str, str]:
        return {**os.environ, **self.overrides}

    def __getitem__(self, key: str) -> str:
        return self._merged()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._merged())

    def __len__(self) -> int:
        return len(self._merged())
