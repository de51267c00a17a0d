"""The three-tier content filter.

1. keyword / pattern list (:mod:`.patterns`) on the normalised text, before the model;
2. a small classifier (:mod:`.classifier`) on the input and on the output;
3. a post-check of the output: tiers 1-2 again, PII masking by policy, degenerate repetition.

Each vertical has its own :class:`SafetyPolicy` (``verticals/<name>/safety.json`` when present). Every block is
logged on ``puyu_apps.safety`` with its tier, category and rule, the text excerpt PII-masked.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from typing import Any, Literal

from ..paths import vertical_dir
from .normalize import compact, variants
from .patterns import PATTERNS
from .pii import KINDS, mask_pii

log = logging.getLogger("puyu_apps.safety")

REFUSAL = {"zh": "抱歉，这个请求涉及不安全的内容，我无法协助。", "en": "Sorry, I can't help with that request."}


@dataclass
class SafetyPolicy:
    """What the filter does for one vertical. Unknown keys in ``safety.json`` raise ``ValueError``."""

    enabled: bool = True
    keywords: bool = True
    classifier: bool = True
    classifier_threshold: float = 0.8
    postcheck: bool = True
    mask_output_pii: bool = True
    pii_kinds: tuple[str, ...] = KINDS
    #: categories of :data:`PATTERNS` that this vertical allows (e.g. "drugs" for a pharmacology assistant)
    allow_categories: tuple[str, ...] = ()
    #: extra regular expressions (matched like the built-in ones) under the category "custom"
    extra_patterns: tuple[str, ...] = ()
    #: block outputs whose repetition rate exceeds this (1.0: never block, only measure)
    max_repetition: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.classifier_threshold <= 1.0:
            raise ValueError(f"SafetyPolicy.classifier_threshold must be in (0, 1], got {self.classifier_threshold}")
        if not 0.0 < self.max_repetition <= 1.0:
            raise ValueError(f"SafetyPolicy.max_repetition must be in (0, 1], got {self.max_repetition}")
        self.pii_kinds = tuple(self.pii_kinds)
        bad = set(self.pii_kinds) - set(KINDS)
        if bad:
            raise ValueError(f"SafetyPolicy.pii_kinds: unknown kind(s) {sorted(bad)}; choose from {KINDS}")
        self.allow_categories = tuple(self.allow_categories)
        bad = set(self.allow_categories) - set(PATTERNS)
        if bad:
            raise ValueError(f"SafetyPolicy.allow_categories: unknown {sorted(bad)}; choose from {sorted(PATTERNS)}")
        self.extra_patterns = tuple(self.extra_patterns)
        for p in self.extra_patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"SafetyPolicy.extra_patterns: {p!r} is not a valid regular expression: {exc}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SafetyPolicy":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"SafetyPolicy: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)

    @classmethod
    def for_vertical(cls, name: str | None) -> "SafetyPolicy":
        """The policy in ``verticals/<name>/safety.json``, or the defaults."""
        if not name:
            return cls()
        path = vertical_dir(name) / "safety.json"
        if not path.exists():
            return cls()
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Verdict:
    allowed: bool
    tier: Literal["keywords", "classifier", "postcheck", ""] = ""
    category: str = ""
    rule: str = ""
    score: float = 0.0
    text: str = ""  # the (possibly PII-masked) text to show
    pii: list[str] = field(default_factory=list)
    repetition: float = 0.0

    @property
    def reason(self) -> str:
        return f"{self.tier}:{self.category}" + (f" ({self.rule})" if self.rule else "")


@lru_cache(maxsize=64)
def _compiled(extra: tuple[str, ...], allow: tuple[str, ...]) -> list[tuple[str, re.Pattern[str]]]:
    out = [(cat, re.compile(p)) for cat, pats in PATTERNS.items() if cat not in allow for p in pats]
    out += [("custom", re.compile(p)) for p in extra]
    return out


def repetition_rate(text: str, n: int = 4) -> float:
    """Share of repeated character n-grams (0: none; close to 1: a loop)."""
    t = re.sub(r"\s+", " ", text)
    grams = [t[i:i + n] for i in range(len(t) - n + 1)]
    if len(grams) < 20:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


class ContentFilter:
    """``check_input`` before the model, ``check_output`` after it. Cheap to construct."""

    def __init__(self, policy: SafetyPolicy | None = None, vertical: str = ""):
        self.policy = policy or SafetyPolicy()
        self.vertical = vertical

    @classmethod
    def for_vertical(cls, name: str) -> "ContentFilter":
        return cls(SafetyPolicy.for_vertical(name), vertical=name)

    def _keywords(self, text: str) -> Verdict | None:
        forms = variants(text)
        for cat, rx in _compiled(self.policy.extra_patterns, self.policy.allow_categories):
            for form in forms:
                m = rx.search(form)
                if m:
                    return Verdict(False, "keywords", cat, m.group()[:40])
        return None

    def _classify(self, text: str) -> Verdict | None:
        from .classifier import MIN_CHARS, default_classifier

        if len(compact(text)) < MIN_CHARS:  # too little evidence for the classifier; tier 1 still applies
            return None
        score = default_classifier().predict_proba(text)
        if score >= self.policy.classifier_threshold:
            return Verdict(False, "classifier", "unsafe", f"p={score:.3f}", score=score)
        return None

    def _blocked(self, verdict: Verdict, text: str, where: str) -> Verdict:
        verdict.text = REFUSAL["zh" if re.search(r"[\u4e00-\u9fff]", text) else "en"]
        log.warning("safety block (%s) vertical=%s tier=%s category=%s rule=%r text=%r", where,
                    self.vertical or "-", verdict.tier, verdict.category, verdict.rule, mask_pii(text[:200]))
        return verdict

    def check_input(self, text: str) -> Verdict:
        """Tiers 1 and 2 on the user's text."""
        p = self.policy
        if not p.enabled or not text:
            return Verdict(True, text=text)
        for tier_on, check in ((p.keywords, self._keywords), (p.classifier, self._classify)):
            if tier_on:
                v = check(text)
                if v is not None:
                    return self._blocked(v, text, "input")
        return Verdict(True, text=text)

    def check_output(self, text: str) -> Verdict:
        """Tier 3: patterns and classifier on the model's text, degenerate repetition, PII masked by policy."""
        p = self.policy
        if not p.enabled or not p.postcheck or not text:
            return Verdict(True, text=text)
        for tier_on, check in ((p.keywords, self._keywords), (p.classifier, self._classify)):
            if tier_on:
                v = check(text)
                if v is not None:
                    v.rule = f"{v.tier}/{v.rule}"
                    v.tier = "postcheck"
                    return self._blocked(v, text, "output")
        rate = repetition_rate(text)
        if rate > p.max_repetition:
            return self._blocked(Verdict(False, "postcheck", "repetition", f"rate={rate:.2f}", score=rate),
                                 text, "output")
        shown = mask_pii(text, p.pii_kinds) if p.mask_output_pii else text
        pii = sorted({k for k in p.pii_kinds if f"[{k}]" in shown and f"[{k}]" not in text})
        return Verdict(True, text=shown, pii=pii, repetition=rate)
