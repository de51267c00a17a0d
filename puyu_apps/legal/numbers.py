"""Amounts written in words, English ("Forty-Five Thousand") and Chinese (伍万元整, 二十万), to numbers (the
word parsers live in :mod:`puyu_apps._numbers`, shared with the service's number check), and written in figures."""

from __future__ import annotations

import re

from .._numbers import en_words_to_number, zh_words_to_number

__all__ = ["en_words_to_number", "zh_words_to_number", "parse_figure"]


def parse_figure(text: str) -> float:
    """'50,000.00' -> 50000.0; also OCR's '50.000.00' and European '50.000,00'."""
    digits = text.replace(" ", "")
    parts = re.split(r"[,.]", digits)
    if len(parts) > 1 and len(parts[-1]) in (1, 2):
        return float("".join(parts[:-1]) + "." + parts[-1])
    return float("".join(parts))
