"""English number words, shared by the legal amount parser and the service's word error rate."""

from __future__ import annotations

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
