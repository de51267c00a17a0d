"""Incremental detokenization with stop strings: what streaming emits equals the non-streaming text."""

from __future__ import annotations

from typing import Any


class TextAccumulator:
    """Feed token ids one at a time; get back the text that is safe to show now.

    Text is held back while it ends in an incomplete UTF-8 sequence or could be the start of a stop string,
    so a stop string never leaks into the stream.
    """

    def __init__(self, tokenizer: Any, stop: list[str]):
        self.tokenizer = tokenizer
        self.stop = stop
        self.ids: list[int] = []
        self.emitted = 0
        self.text = ""
        self.stopped = False

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        self.text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        for s in self.stop:
            idx = self.text.find(s)
            if idx != -1:
                self.text = self.text[:idx]
                self.stopped = True
        if self.stopped:
            return self._emit(len(self.text))
        end = len(self.text)
        if self.text.endswith("\ufffd"):
            end -= 1
        end -= self._stop_prefix_len(self.text[:end])
        return self._emit(end)

    def finish(self) -> str:
        """Emit what was held back (a partial stop string that never completed, a trailing partial byte)."""
        return self._emit(len(self.text))

    def _emit(self, end: int) -> str:
        if end <= self.emitted:
            return ""
        piece = self.text[self.emitted:end]
        self.emitted = end
        return piece

    def _stop_prefix_len(self, text: str) -> int:
        best = 0
        for s in self.stop:
            for k in range(min(len(s) - 1, len(text)), best, -1):
                if text.endswith(s[:k]):
                    best = k
                    break
        return best
