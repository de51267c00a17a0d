"""Lung-RADS v2022 category from measurements (baseline screening rules), deterministic.

Solid: <6 mm -> 2, 6-<8 -> 3, 8-<15 -> 4A, >=15 -> 4B. Part-solid: total <6 -> 2; >=6 with solid part <6 -> 3;
solid part 6-<8 -> 4A; >=8 -> 4B. Ground-glass: <30 -> 2, >=30 -> 3. No nodule -> 1. A study that cannot be
evaluated (e.g. a single slice) -> 0. Diameters are mean axial diameters rounded to 0.1 mm.
"""

from __future__ import annotations

import re
from typing import Iterable

ORDER = ("0", "1", "2", "3", "4A", "4B")

MANAGEMENT = {
    "0": "Incomplete: a complete chest CT series (or comparison with prior imaging) is needed.",
    "1": "Negative: continue annual screening with low-dose CT in 12 months.",
    "2": "Benign appearance or behaviour: continue annual screening with low-dose CT in 12 months.",
    "3": "Probably benign: low-dose CT in 6 months.",
    "4A": "Suspicious: low-dose CT in 3 months; PET/CT may be considered if there is a solid component of 8 mm "
          "or more.",
    "4B": "Very suspicious: diagnostic chest CT with or without contrast, PET/CT and/or tissue sampling.",
}


def nodule_category(kind: str, diameter_mm: float, solid_mm: float = 0.0) -> str:
    d, s = round(float(diameter_mm), 1), round(float(solid_mm), 1)
    if kind == "solid":
        return "2" if d < 6 else "3" if d < 8 else "4A" if d < 15 else "4B"
    if kind == "part-solid":
        if d < 6:
            return "2"
        return "3" if s < 6 else "4A" if s < 8 else "4B"
    if kind == "ground-glass":
        return "2" if d < 30 else "3"
    raise ValueError(f"kind must be solid, part-solid or ground-glass, got {kind!r}")


def study_category(categories: Iterable[str], evaluable: bool = True) -> str:
    if not evaluable:
        return "0"
    cats = list(categories)
    return max(cats, key=ORDER.index) if cats else "1"


_MENTION = re.compile(r"(lung[\s-]*rads[^0-9]{0,20}?|category\s*)(0|1|2|3|4\s*[abx]|4)\b", re.I)


def mentioned_categories(text: str) -> list[str]:
    """Lung-RADS categories the text states (``Lung-RADS 4A``, ``category 3``...)."""
    return [m.group(2).replace(" ", "").upper() for m in _MENTION.finditer(text)]


def correct_text(text: str, category: str) -> tuple[str, list[str]]:
    """Replace stated categories that disagree with ``category``; append it when none is stated.

    Returns the corrected text and the wrong categories that were found.
    """
    wrong = [c for c in mentioned_categories(text) if c != category]
    fixed = _MENTION.sub(lambda m: f"{m.group(1)}{category}", text)
    if not mentioned_categories(fixed):
        fixed = fixed.rstrip() + f"\nLung-RADS category {category}."
    return fixed, wrong
