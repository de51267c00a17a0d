"""Number words, shared by the legal amount parser, the service's word error rate and its number check: English
words of an integer, and English and Chinese number words back to values."""

from __future__ import annotations

import re

#: 0-19, then the tens from twenty, then the scales
EN_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
           "seventeen eighteen nineteen").split()
EN_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
EN_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9}


def number_words(n: int) -> list[str]:
    """English words of a non-negative integer, as speech synthesis says it: 123 -> one hundred twenty three."""
    if n < 20:
        return [EN_ONES[n]]
    if n < 100:
        return [EN_TENS[n // 10 - 2]] + ([EN_ONES[n % 10]] if n % 10 else [])
    if n < 1000:
        return [EN_ONES[n // 100], "hundred"] + (number_words(n % 100) if n % 100 else [])
    for word, size in sorted(EN_SCALES.items(), key=lambda kv: -kv[1]):
        if n >= size:
            return number_words(n // size) + [word] + (number_words(n % size) if n % size else [])
    raise AssertionError(n)


_EN_UNITS = {w: i for i, w in enumerate(EN_ONES)}
_EN_TENS = {w: 10 * (i + 2) for i, w in enumerate(EN_TENS)}
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
        elif tok in EN_SCALES:
            total += max(current, 1) * EN_SCALES[tok]
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
