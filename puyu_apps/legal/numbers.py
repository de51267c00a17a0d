"""Amounts written in words, English ("Forty-Five Thousand") and Chinese (伍万元整, 二十万), to numbers."""

from __future__ import annotations

import re

from .._numbers import EN_ONES, EN_SCALES, EN_TENS

_EN_UNITS = {w: i for i, w in enumerate(EN_ONES)}
_EN_TENS = {w: 10 * (i + 2) for i, w in enumerate(EN_TENS)}
_EN_SCALES = EN_SCALES
_ZH_DIGITS = {**{c: i for i, c in enumerate("零一二三四五六七八九")}, **{c: i for i, c in enumerate("〇壹贰叁肆伍陆柒捌玖")},
              "两": 2, "貳": 2, "參": 3, "陸": 6}
_ZH_SMALL = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_ZH_BIG = {"万": 10**4, "萬": 10**4, "亿": 10**8, "億": 10**8}


def en_words_to_number(text: str) -> float | None:
    """'Forty-Five Thousand US Dollars' -> 45000; None when no number word is found."""
    tokens = re.findall(r"[a-z]+", text.lower().replace("-", " "))
    total, current, seen = 0, 0, False
    for tok in tokens:
        if tok in _EN_UNITS:
            current += _EN_UNITS[tok]
        elif tok in _EN_TENS:
            current += _EN_TENS[tok]
        elif tok == "hundred":
            current = max(current, 1) * 100
        elif tok in _EN_SCALES:
            total += max(current, 1) * _EN_SCALES[tok]
            current = 0
        elif tok == "and":
            continue
        else:
            if seen:
                break
            continue
        seen = True
    return float(total + current) if seen else None


def zh_words_to_number(text: str) -> float | None:
    """'伍万元整' -> 50000, '贰拾万零伍佰元' -> 200500, '十五' -> 15; None without numerals."""
    text = re.sub(r"[元圆整正人民币\s]", "", text.split("角")[0].split("分")[0])
    total, section, digit, seen = 0, 0, 0, False
    for ch in text:
        if ch in _ZH_DIGITS:
            digit = _ZH_DIGITS[ch]
            seen = True
        elif ch in _ZH_SMALL:
            section += max(digit, 1 if not section and not digit else digit) * _ZH_SMALL[ch]
            digit, seen = 0, True
        elif ch in _ZH_BIG:
            if _ZH_BIG[ch] > 10**4:  # 亿 scales everything before it
                total = (total + section + digit) * _ZH_BIG[ch]
            else:
                total += (section + digit) * _ZH_BIG[ch]
            section, digit, seen = 0, 0, True
        else:
            break
    if not any(ch in _ZH_DIGITS or ch in "十拾" for ch in text):
        return None  # scale characters alone (an OCR that dropped the numeral) are no amount
    return float(total + section + digit) if seen else None


def parse_figure(text: str) -> float:
    """'50,000.00' -> 50000.0; also OCR's '50.000.00' and European '50.000,00'."""
    digits = text.replace(" ", "")
    parts = re.split(r"[,.]", digits)
    if len(parts) > 1 and len(parts[-1]) in (1, 2):
        return float("".join(parts[:-1]) + "." + parts[-1])
    return float("".join(parts))
