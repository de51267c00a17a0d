"""The output post-check for streamed text: a short tail is held back so PII split across pieces is still masked,
and the pattern / classifier tiers re-run on the text so far; a block stops the stream."""

from __future__ import annotations

from .filter import ContentFilter, Verdict
from .pii import find_pii


class StreamGuard:
    def __init__(self, content_filter: ContentFilter, holdback: int = 48, check_every: int = 64):
        self.filter = content_filter
        self.holdback, self.check_every = holdback, check_every
        self.text = ""
        self._pos = 0  # how much of ``text`` has been emitted
        self._checked = 0
        self.blocked: Verdict | None = None
        self.final: Verdict | None = None

    @property
    def _active(self) -> bool:
        p = self.filter.policy
        return p.enabled and p.postcheck

    def push(self, piece: str) -> str:
        """Add a generated piece; return the text that is safe to send now ("" while held back or blocked)."""
        if self.blocked is not None:
            return ""
        self.text += piece
        if not self._active:
            return self._emit(len(self.text))
        if len(self.text) - self._checked >= self.check_every:
            self._checked = len(self.text)
            for tier_on, check in ((self.filter.policy.keywords, self.filter._keywords),
                                   (self.filter.policy.classifier, self.filter._classify)):
                v = check(self.text) if tier_on else None
                if v is not None:
                    v.rule, v.tier = f"{v.tier}/{v.rule}", "postcheck"
                    self.blocked = self.filter._blocked(v, self.text, "stream")
                    return ""
        return self._emit(len(self.text) - self.holdback)

    def finish(self) -> str:
        """The held-back tail after the full post-check ("" when the output is blocked)."""
        if self.blocked is not None:
            return ""
        self.final = self.filter.check_output(self.text)
        if not self.final.allowed:
            self.blocked = self.final
            return ""
        return self._emit(len(self.text))

    def _emit(self, cut: int) -> str:
        if cut <= self._pos:
            return ""
        policy = self.filter.policy
        findings = find_pii(self.text, policy.pii_kinds) if (self._active and policy.mask_output_pii) else []
        for f in findings:
            if f.start < cut < f.end:
                cut = f.start
        if cut <= self._pos:
            return ""
        out, last = [], self._pos
        for f in findings:
            if f.start >= self._pos and f.end <= cut:
                out.append(self.text[last:f.start])
                out.append(f"[{f.kind}]")
                last = f.end
        out.append(self.text[last:cut])
        self._pos = cut
        return "".join(out)
