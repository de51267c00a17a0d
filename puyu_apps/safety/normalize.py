"""Text normalisation that defeats cheap evasion: full-width -> half-width (NFKC), case folding, zero-width and
control characters removed, spaces and punctuation inside words removed, common digit/symbol look-alikes mapped."""

from __future__ import annotations

import re
import unicodedata

_ZERO_WIDTH = re.compile(r"[\u200b-\u200f\u2028-\u202f\u2060-\u206f\ufeff\u00ad\u034f\u180e]")
# everything that is not a letter, a digit or a CJK character is dropped in the compact form
_NON_WORD = re.compile(r"[^0-9a-z\u3400-\u9fff\uf900-\ufaff]+")
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i",
                       "|": "l", "+": "t"})


def normalize(text: str) -> str:
    """NFKC (full-width forms become ASCII), case folding, zero-width characters removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text)
    text = _ZERO_WIDTH.sub("", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cc" or ch in "\n\t ")
    return re.sub(r"\s+", " ", text.casefold()).strip()


def compact(text: str) -> str:
    """The normalised text with every space and punctuation mark removed: ``"b o-m.b"`` -> ``"bomb"``."""
    return _NON_WORD.sub("", normalize(text))


def deleet(text: str) -> str:
    """Look-alike symbols mapped to letters (``"b0mb"`` -> ``"bomb"``), then compacted."""
    return _NON_WORD.sub("", normalize(text).translate(_LEET))


def variants(text: str) -> list[str]:
    """The forms a keyword list is matched against."""
    forms = [normalize(text), compact(text), deleet(text)]
    return list(dict.fromkeys(forms))
