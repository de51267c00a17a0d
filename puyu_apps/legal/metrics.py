"""Evaluation helpers shared by tests and ``benchmarks/legal.py``: character error rate, box matching."""

from __future__ import annotations

import re

import numpy as np

from .signatures import iou


def _norm(text: str) -> str:
    return re.sub(r"[\s_]+", "", text).replace("（", "(").replace("）", ")").replace("：", ":").replace("，", ",")


def levenshtein(a: str, b: str) -> int:
    """Edit distance, one numpy row at a time (insertions via a running minimum)."""
    if not a:
        return len(b)
    if not b:
        return len(a)
    bb = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    idx = np.arange(len(b) + 1)
    prev = idx.copy()
    for i, ch in enumerate(a, start=1):
        cost = (bb != ord(ch)).astype(np.int64)
        cur = np.empty_like(prev)
        cur[0] = i
        cur[1:] = np.minimum(prev[1:] + 1, prev[:-1] + cost)
        cur = np.minimum.accumulate(cur - idx) + idx  # cur[j] = min(cur[j], cur[j-1] + 1)
        prev = cur
    return int(prev[-1])


def cer(got: str, ref: str) -> float:
    """Character error rate, whitespace and full-width punctuation normalised."""
    g, r = _norm(got), _norm(ref)
    return levenshtein(g, r) / max(len(r), 1)


def match_boxes(pred: list[tuple[int, tuple]], truth: list[tuple[int, tuple]],
                thr: float = 0.5) -> tuple[int, int, int]:
    """Greedy one-to-one matching of (page, box) at IoU >= thr: (true positives, false positives, misses)."""
    used: set[int] = set()
    tp = 0
    for page, box in pred:
        best, best_iou = None, thr
        for j, (tpage, tbox) in enumerate(truth):
            if j in used or tpage != page:
                continue
            v = iou(box, tbox)
            if v >= best_iou:
                best, best_iou = j, v
        if best is not None:
            used.add(best)
            tp += 1
    return tp, len(pred) - tp, len(truth) - tp
