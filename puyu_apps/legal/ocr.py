"""Scanned pages: deskew, language choice and tesseract OCR with word boxes (pytesseract).

Tesseract runs one process per page with ``OMP_THREAD_LIMIT=1``; the caller runs pages in parallel across cores
(measured here: 1.2-1.9 s a page single-threaded, 3.5-4.6 s and erratic with tesseract's own threads).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .._optional import require
from .._threads import EnvOverlay
from .types import Word

#: ``--psm`` per language: 3 (automatic layout) for English, 6 (uniform block) reads Chinese pages better.
PSM = {"eng": 3, "chi_sim": 6}
_CJK = re.compile(r"[\u4e00-\u9fff]")


def _cv2() -> Any:
    return require("cv2", "legal", "opencv-python-headless")


def _tess() -> Any:
    return require("pytesseract", "legal")


_limit_lock = threading.Lock()
_limit_users = 0


@contextmanager
def _single_threaded_tesseract() -> Iterator[None]:
    """Tesseract children started inside get ``OMP_THREAD_LIMIT=1``; this process's environment is untouched
    (libgomp in torch reads that variable too, and hangs when torch asks for more threads than it allows).
    pytesseract passes its module-level ``environ`` to each child; we overlay it while any page is in OCR."""
    global _limit_users
    mod = _tess().pytesseract
    with _limit_lock:
        if _limit_users == 0:
            mod._puyu_saved_environ, mod.environ = mod.environ, EnvOverlay(OMP_THREAD_LIMIT="1")
        _limit_users += 1
    try:
        yield
    finally:
        with _limit_lock:
            _limit_users -= 1
            if _limit_users == 0:
                mod.environ = mod._puyu_saved_environ


def to_gray(rgb: np.ndarray) -> np.ndarray:
    return rgb if rgb.ndim == 2 else _cv2().cvtColor(rgb, _cv2().COLOR_RGB2GRAY)


def estimate_skew(gray: np.ndarray, max_deg: float = 5.0) -> float:
    """The rotation (degrees, cv2's sense) that straightens the page, by projection profiles: the angle that
    makes the row sums of the ink most peaked (text lines sharp). Accepts gray or RGB."""
    cv2 = _cv2()
    gray = to_gray(gray)
    h, w = gray.shape
    scale = 800.0 / max(w, 1)
    small = cv2.resize(gray, (800, max(1, int(h * scale))), interpolation=cv2.INTER_AREA) if scale < 1 else gray
    _, ink = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    if ink.mean() < 0.2:  # blank page
        return 0.0
    sh, sw = ink.shape
    centre = (sw / 2, sh / 2)

    def score(angle: float) -> float:
        m = cv2.getRotationMatrix2D(centre, angle, 1.0)
        rot = cv2.warpAffine(ink, m, (sw, sh), flags=cv2.INTER_NEAREST, borderValue=0)
        rows = rot.sum(axis=1, dtype=np.float64)
        return float(np.var(rows))

    coarse = np.arange(-max_deg, max_deg + 1e-6, 0.5)
    best = max(coarse, key=score)
    fine = np.arange(best - 0.5, best + 0.5 + 1e-6, 0.1)
    return float(round(max(fine, key=score), 2))


def rotate(rgb: np.ndarray, angle: float) -> np.ndarray:
    """Rotate by ``angle`` degrees about the centre, white border, same size."""
    if abs(angle) < 0.05:
        return rgb
    cv2 = _cv2()
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    border = (255, 255, 255) if rgb.ndim == 3 else 255
    return cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=border)


def deskew(rgb: np.ndarray, max_deg: float = 5.0) -> tuple[np.ndarray, float]:
    angle = estimate_skew(to_gray(rgb), max_deg)
    return rotate(rgb, angle), angle


def remove_rules(gray: np.ndarray) -> np.ndarray:
    """Paint long horizontal/vertical rules (form lines, '______' fillers) white: tesseract drops labels that
    run into them ('Signature: ____', '签字：____')."""
    cv2 = _cv2()
    _, ink = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    long = max(25, gray.shape[1] // 25)
    rules = np.zeros_like(ink)
    for kernel in ((long, 1), (1, long)):
        rules |= cv2.morphologyEx(ink, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, kernel))
    out = gray.copy()
    out[cv2.dilate(rules, np.ones((3, 3), np.uint8)) > 0] = 255
    return out


def ocr_words(rgb: np.ndarray, lang: str) -> tuple[list[Word], float]:
    """Words with boxes (page fractions) and the mean word confidence."""
    tess = _tess()
    if lang not in PSM:
        raise ValueError(f"lang: expected one of {sorted(PSM)}, got {lang!r}")
    h, w = rgb.shape[:2]
    with _single_threaded_tesseract():
        data = tess.image_to_data(remove_rules(to_gray(rgb)), lang=lang, config=f"--psm {PSM[lang]}",
                                  output_type=tess.Output.DICT)
    words: list[Word] = []
    for text, conf, x, y, bw, bh in zip(data["text"], data["conf"], data["left"], data["top"], data["width"],
                                        data["height"]):
        text = (text or "").strip()
        conf = float(conf)
        if not text or conf < 0:
            continue
        words.append(Word(text=text, box=(x / w, y / h, (x + bw) / w, (y + bh) / h), conf=conf))
    mean = float(np.mean([wd.conf for wd in words])) if words else 0.0
    return words, mean


def detect_lang(rgb: np.ndarray) -> str:
    """'chi_sim' when a quick chi_sim pass over the top of the page reads Chinese characters, else 'eng'."""
    h = rgb.shape[0]
    strip = rgb[: max(1, int(h * 0.35))]
    words, _ = ocr_words(strip, "chi_sim")
    cjk = sum(len(_CJK.findall(wd.text)) for wd in words if wd.conf >= 50)
    return "chi_sim" if cjk >= 8 else "eng"
