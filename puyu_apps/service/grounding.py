"""Numbers in a reply must come from what the model was given: the caller's words, the conversation so far and the
FAQ facts in its prompt. A small model makes numbers up ("I see the charge of two", an order number it was never
told); on a customer line a wrong amount, date or order number does more harm than a missing sentence.

- :func:`numbers_in`: the numbers a text states, as values: digits ("2,000", "3.5", the 9 and 30 of "9:30", the
  9 alone of "9:00"), English number words ("two", "twenty-five", "three hundred") and Chinese numerals ("三十",
  "两"). A lone "one" / "一" is not counted (mostly "a": "one moment", "一下", "一个"), nor idioms such as 十分
  ("very").
- :func:`keep_grounded`: a text without its sentences that state a number outside an allowed set.
- :class:`NumberGuard`: the same rule as a streaming filter between the model and the speech synthesis: text goes
  in piece by piece, each sentence comes out once complete unless it states such a number (never spoken).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .._numbers import EN_ONES, EN_SCALES, EN_TENS, en_words_to_number, zh_words_to_number
from .tts import split_sentences, take_sentences

_DIGITS = re.compile(r"\d+(?:[.,]\d+)*")
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+")
_WORDS = "|".join(sorted(set(EN_ONES) | set(EN_TENS) | set(EN_SCALES) | {"hundred"}, key=len, reverse=True))
_EN_RUN = re.compile(rf"\b(?:{_WORDS})(?:(?:\s+and\s+|\s+|-)(?:{_WORDS}))*\b", re.IGNORECASE)
_ZH_RUN = re.compile(r"[零〇一二两三四五六七八九十百千万亿壹贰叁肆伍陆柒捌玖拾佰仟萬億]+")
#: Chinese words written with numerals that state no number
_ZH_IDIOMS = re.compile(r"十分|万分|万一|一一|千万|百分之百|一五一十|三心二意|乱七八糟|七嘴八舌")


def _value(v: float | str) -> float:
    return round(float(v), 6)


def numbers_in(text: str) -> set[float]:
    """The numbers ``text`` states (values; see the module docstring for what counts)."""
    found: set[float] = set()
    for m in _DIGITS.finditer(text):
        s = m.group()
        if m.start() > 0 and text[m.start() - 1] == ":" and not s.strip("0"):
            continue  # the ":00" of "9:00" (a time said "9am" elsewhere)
        if _THOUSANDS.fullmatch(s):
            found.add(_value(s.replace(",", "")))
            continue
        for part in s.split(","):  # "1,2" is a list, "3.5" a decimal
            try:
                found.add(_value(part))
            except ValueError:  # "1.2.3": its parts
                found.update(_value(p) for p in part.split(".") if p)
    for m in _EN_RUN.finditer(text):
        run = m.group().lower()
        n = en_words_to_number(run) if run != "one" else None
        if n is not None:
            found.add(_value(n))
    for m in _ZH_RUN.finditer(_ZH_IDIOMS.sub("，", text)):
        n = zh_words_to_number(m.group()) if m.group() != "一" else None
        if n is not None:
            found.add(_value(n))
    return found


def keep_grounded(text: str, allowed: set[float]) -> tuple[str, list[str], set[float]]:
    """``(text without the sentences that state a number outside allowed, those sentences, their numbers)``;
    ``text`` unchanged when every number it states is allowed."""
    guard = NumberGuard(allowed)
    kept = guard._pass(split_sentences(text))
    if not guard.dropped:
        return text, [], set()
    return kept.strip(), guard.dropped, set().union(*(numbers_in(s) for s in guard.dropped)) - allowed


@dataclass
class NumberGuard:
    """Streaming :func:`keep_grounded`: ``feed(piece)`` returns the whole sentences that may be spoken now (the
    unfinished one is held back), ``finish()`` the last one once the reply is complete, ``discard()`` forgets it (a
    reply cut by the token limit). ``dropped`` lists the sentences held back for good."""

    allowed: set[float]
    dropped: list[str] = field(default_factory=list)
    _buf: str = ""

    @classmethod
    def for_sources(cls, *texts: str) -> "NumberGuard":
        """A guard that allows the numbers of ``texts`` (the prompt the model was given)."""
        return cls(set().union(*(numbers_in(t) for t in texts)))

    def _pass(self, sentences: list[str]) -> str:
        out = []
        for s in (s.strip() for s in sentences):
            if not s:
                continue
            if numbers_in(s) - self.allowed:
                self.dropped.append(s)
            else:
                out.append(_joined(s))
        return "".join(out)

    def feed(self, piece: str) -> str:
        done, self._buf = take_sentences(self._buf + piece)
        return self._pass(done)

    def finish(self) -> str:
        text, self._buf = self._buf, ""
        return self._pass([text])

    def discard(self) -> None:
        self._buf = ""


def _joined(sentence: str) -> str:
    """A sentence as it is passed on: a space after Latin punctuation, none after Chinese."""
    return sentence if sentence.endswith(("。", "！", "？", "；")) else sentence + " "
