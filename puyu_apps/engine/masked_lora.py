"""Several LoRA adapters in one llama.cpp decode: a combined adapter in masked mode.

llama.cpp applies adapters per context, so requests on different adapters cannot share a decode; without help
they decode in separate contexts (the scheduler's lanes), each pass over the base weights serving only that
adapter's requests. With our masked-LoRA patch (``scripts/patches/lora_mask.py``) one *combined* adapter holds
every loaded adapter side by side (:func:`puyu_apps.engine.lora_gguf.combine`: A matrices stacked, B matrices side
by side, scales folded in), and each sequence gets a row mask: 1 on the rank rows of its request's adapters, 0
elsewhere (all 0: the base model). A decode of requests on any mix of adapters is then one batch:
``W x + B (m * (A x))``, the base weights read once for all of them.

A :class:`MaskedLora` belongs to one context (the masks are kept per sequence id in the adapter object, and
sequence ids are per context), and is used from the engine thread only.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import lora_gguf
from .llamacpp import LlamaModel, LoraHandle


class MaskedLora:
    """A combined adapter over ``sources`` loaded in masked mode, and the row mask of each adapter group."""

    def __init__(self, model: LlamaModel, sources: Sequence[LoraHandle], fused: bool | None = None):
        self.model = model
        self.sources = list(sources)
        # llama.cpp copies the tensors into its own buffers: the file is not needed after the load (a combination
        # of adapters is written again when it is needed again, a fraction of a second, rather than kept on disk)
        with tempfile.TemporaryDirectory(prefix="puyu-lora-") as tmp:
            path = Path(tmp) / "combined.gguf"
            offsets = lora_gguf.combine([h.path for h in self.sources], path)
            self.handle = model.load_lora(path)
        self.rank = offsets[-1]
        try:
            model.enable_mask(self.handle, self.rank, fused)
        except BaseException:
            model.free_lora(self.handle)
            raise
        self._blocks = {id(h): (h, offsets[i], offsets[i + 1]) for i, h in enumerate(self.sources)}
        self._rows: dict[tuple[int, ...], np.ndarray | None] = {}

    def covers(self, adapters: Sequence[LoraHandle]) -> bool:
        """Whether every adapter of a request is one of the combined ones (the same loaded object)."""
        return all(self._blocks.get(id(h), (None,))[0] is h for h in adapters)

    def holds(self, handle_ids: set[int]) -> bool:
        """Whether any of these adapters (by ``id``) is combined here."""
        return not handle_ids.isdisjoint(self._blocks)

    def row(self, adapters: Sequence[LoraHandle]) -> np.ndarray | None:
        """The row mask of a request on ``adapters`` (None for the base model: all 0)."""
        key = tuple(id(h) for h in adapters)
        if key not in self._rows:
            if not adapters:
                self._rows[key] = None
            else:
                row = np.zeros(self.rank, dtype=np.float32)
                for h in adapters:
                    _, start, stop = self._blocks[id(h)]
                    row[start:stop] = 1.0
                self._rows[key] = row
        return self._rows[key]

    def set_seq(self, seq: int, adapters: Sequence[LoraHandle]) -> None:
        """Make sequence ``seq`` decode with ``adapters`` (from its next decode on)."""
        self.model.set_seq_mask(self.handle, seq, self.row(adapters))

    def free(self) -> None:
        """Free the combined adapter (no context may have it set)."""
        self.model.free_lora(self.handle)
