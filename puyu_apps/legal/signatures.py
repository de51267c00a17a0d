"""Signature marks and seals on page images (OpenCV), and their matching to signature blocks.

No signature-detection model ships offline, so this is image processing: red seals from an HSV mask (large,
round components); ink signatures as the strokes left after removing red, ruled lines and text-sized components:
tall or wide, sparse connected strokes merged with their neighbours. Every threshold is relative to the page
width (images are normalised to 1000 px) or to the page's median character height, so it holds for 100 dpi
renders and 300 dpi scans alike.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from .._optional import require
from .structure import normalise
from .types import Box, Line, SignatureBlock, SignatureMark, Word

NORM_W = 1000
BLOCK_LABEL = re.compile(r"signature|signed by|sign here|^by\s*[:：]|签字|签名|盖章|签章|[（(]章[)）]", re.I)
SEAL_LABEL = re.compile(r"盖章|签章|[（(]章[)）]|seal", re.I)
_FILLER = re.compile(r"^[_.\-—…:：]+$")


def _cv2() -> Any:
    return require("cv2", "legal", "opencv-python-headless")


def detect_marks(rgb: np.ndarray, words: list[Word], page: int) -> list[SignatureMark]:
    """Signature strokes and red seals on one page image; boxes in page fractions."""
    cv2 = _cv2()
    h0, w0 = rgb.shape[:2]
    scale = NORM_W / w0
    img = cv2.resize(rgb, (NORM_W, max(1, round(h0 * scale))), interpolation=cv2.INTER_AREA)
    H, W = img.shape[:2]
    marks: list[SignatureMark] = []

    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    red_px = (((hue <= 10) | (hue >= 165)) & (sat >= 80) & (val >= 60)).astype(np.uint8) * 255
    red = cv2.dilate(red_px, np.ones((5, 5), np.uint8))
    n, red_labels, stats, _ = cv2.connectedComponentsWithStats(red, connectivity=8)
    seal_mask = np.zeros_like(red)
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        if bw >= 0.045 * W and bh >= 0.045 * W and 0.7 <= bw / bh <= 1.4:
            roundness = min(1.0, area / (0.25 * np.pi * bw * bh) * 2.0)   # a ring fills ~35-60 % of its disc
            conf = round(float(np.clip(0.6 + 0.4 * roundness, 0, 0.99)), 3)
            marks.append(SignatureMark(page=page, box=_frac((x, y, x + bw, y + bh), W, H), kind="seal",
                                       confidence=conf))
            seal_mask[(red_labels == i) & (red_px > 0)] = 255  # only red pixels: ink across a seal stays

    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    _, ink = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    if ink.mean() < 0.05 * 255 * 0.01:  # blank
        return marks
    ink[cv2.dilate(seal_mask, np.ones((3, 3), np.uint8)) > 0] = 0
    long = max(20, int(0.05 * W))
    for kernel in ((long, 1), (1, long)):  # ruled lines, underscores, table borders
        lines = cv2.morphologyEx(ink, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, kernel))
        ink = cv2.subtract(ink, lines)
    # re-join strokes the rule removal cut where they crossed a thin line (the rule itself stays removed)
    ink = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (1, 5)))
    ink = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))  # speckle

    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    if n <= 1:
        return marks
    heights = stats[1:, cv2.CC_STAT_HEIGHT]
    text_h = float(np.median(heights[heights >= 4])) if np.any(heights >= 4) else 10.0
    text_h = max(text_h, 6.0)
    text_mask = _text_mask(words, W, H)
    strokes, pieces = [], []
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        fill = area / max(bw * bh, 1)
        if bh > 0.25 * H or bw > 0.5 * W or bh < 0.5 * text_h:
            continue
        if text_mask[y:y + bh, x:x + bw].mean() > 0.85:  # inside confidently read words
            continue
        big = bh >= 1.6 * text_h or (bw >= 4.0 * text_h and bh >= 1.1 * text_h)
        if big and fill <= 0.45:
            strokes.append([x, y, x + bw, y + bh, area, fill])
        elif fill <= 0.55:
            pieces.append([x, y, x + bw, y + bh, area, fill])
    groups = _merge(_absorb(_merge(strokes, 1.5 * text_h, 5.0 * text_h), pieces, 0.6 * text_h), 1.5 * text_h,
                    5.0 * text_h)
    seal_px = [(m.box[0] * W, m.box[1] * H, m.box[2] * W, m.box[3] * H) for m in marks]
    for group in groups:
        x0, y0, x1, y1 = group[:4]
        if any(_inside((x0, y0, x1, y1), sb) > 0.9 and (x1 - x0) < 0.5 * (sb[2] - sb[0]) for sb in seal_px):
            continue  # the seal's own star or lettering, faded out of the red mask
        bh, bw = y1 - y0, x1 - x0
        fill = group[5]
        conf = 0.45 + 0.15 * min(2.0, bh / text_h - 1.6) + 0.5 * max(0.0, 0.45 - fill) / 0.45
        conf += 0.1 * min(1.0, bw / (8 * text_h))
        marks.append(SignatureMark(page=page, box=_frac((x0, y0, x1, y1), W, H), kind="signature",
                                   confidence=round(float(np.clip(conf, 0.05, 0.99)), 3)))
    return marks


def _frac(box: tuple[float, float, float, float], W: int, H: int) -> Box:
    x0, y0, x1, y1 = box
    return (round(x0 / W, 4), round(y0 / H, 4), round(x1 / W, 4), round(y1 / H, 4))


def _text_mask(words: list[Word], W: int, H: int) -> np.ndarray:
    """Pixels inside confidently read words (underscore fillers excluded: signatures sit on them)."""
    mask = np.zeros((H, W), bool)
    for wd in words:
        if wd.conf < 85 or _FILLER.match(wd.text) or len(wd.text.strip("_")) < 2:
            continue
        x0, y0, x1, y1 = wd.box
        if "_" in wd.text:  # '签字：______' is one word: mask the label part only
            x1 = x0 + (x1 - x0) * _width(wd.text.split("_")[0]) / max(_width(wd.text), 1)
        mask[max(0, int(y0 * H) - 1):int(y1 * H) + 2, max(0, int(x0 * W) - 1):int(x1 * W) + 2] = True
    return mask


def _inside(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy / max((a[2] - a[0]) * (a[3] - a[1]), 1e-9)


def _width(text: str) -> int:
    """Rough advance width in half-em units: CJK and full-width characters count two."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _merge(strokes: list[list[float]], gap: float, gap_x: float | None = None) -> list[list[float]]:
    """Merge stroke boxes closer than ``gap`` px vertically and ``gap_x`` px along the line (first and last
    name of one signature), area-weighted fill."""
    gap_x = gap if gap_x is None else gap_x
    groups = [list(s) for s in strokes]
    changed = True
    while changed:
        changed = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                a, b = groups[i], groups[j]
                if a[0] - gap_x <= b[2] and b[0] - gap_x <= a[2] and a[1] - gap <= b[3] and b[1] - gap <= a[3]:
                    area = a[4] + b[4]
                    fill = (a[5] * a[4] + b[5] * b[4]) / max(area, 1)
                    groups[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]), area, fill]
                    del groups[j]
                    changed = True
                    break
            if changed:
                break
    return groups


def _absorb(groups: list[list[float]], pieces: list[list[float]], gap: float) -> list[list[float]]:
    """Grow each signature group by the smaller stroke pieces touching it (a stroke cut where it crossed a
    seal's ring or a ruled line)."""
    pieces = list(pieces)
    for g in groups:
        grown = True
        while grown:
            grown = False
            for p in pieces:
                if g[0] - gap <= p[2] and p[0] - gap <= g[2] and g[1] - gap <= p[3] and p[1] - gap <= g[3]:
                    g[:4] = [min(g[0], p[0]), min(g[1], p[1]), max(g[2], p[2]), max(g[3], p[3])]
                    pieces.remove(p)
                    grown = True
                    break
    return groups


# -- blocks ---------------------------------------------------------------------------------------------------
def find_blocks(lines: list[Line], roles: list[str], names: dict[str, str]) -> list[SignatureBlock]:
    """Signature blocks: lines carrying a signature/seal label; each gets the party named on its line or the
    nearest line above in the same column."""
    blocks: list[SignatureBlock] = []
    for i, ln in enumerate(lines):
        text = normalise(ln.text)
        if not BLOCK_LABEL.search(text) or len(text) > 80:
            continue
        party = _party_of(ln, roles, names)
        if not party:
            for prev in reversed(lines[max(0, i - 12):i]):
                if prev.page != ln.page or ln.box[1] - prev.box[3] > 0.15:
                    continue
                if abs(prev.box[0] - ln.box[0]) > 0.08:
                    continue
                party = _party_of(prev, roles, names)
                if party:
                    break
        blocks.append(SignatureBlock(page=ln.page, label=text, party=party, box=_region(ln, lines),
                                     signed=False))
    _fill_parties_by_column(blocks, roles)
    return blocks


def _fill_parties_by_column(blocks: list[SignatureBlock], roles: list[str]) -> None:
    """Blocks whose party was not read (an OCR miss, a seal over the name) take the party of their column on the
    page, or the one party no column names yet."""
    for page in {b.page for b in blocks}:
        on_page = [b for b in blocks if b.page == page]
        columns: list[list[SignatureBlock]] = []
        for b in sorted(on_page, key=lambda b: b.box[0]):
            if columns and abs(columns[-1][0].box[0] - b.box[0]) < 0.08:
                columns[-1].append(b)
            else:
                columns.append([b])
        named = {b.party for b in on_page if b.party}
        spare = [r for r in roles if r not in named]
        for col in columns:
            party = next((b.party for b in col if b.party), "")
            if not party and len(spare) == 1 and len(columns) > 1:
                party = spare.pop()
            for b in col:
                b.party = b.party or party


def _party_of(ln: Line, roles: list[str], names: dict[str, str]) -> str:
    text = normalise(ln.text).replace(" ", "")
    for role in roles:
        if role.replace(" ", "") in text or (names.get(role) and names[role].replace(" ", "")[:6] in text):
            return role
    return ""


def _region(ln: Line, lines: list[Line]) -> Box:
    """Where a mark for this label may lie: from the label to the next label in the row, a few lines up (the
    mark sits on or above the line), further for seal labels (seals are stamped across the label)."""
    x0, y0, x1, y1 = ln.box
    right = min(1.0, x0 + 0.45)
    for other in lines:
        if other is ln or other.page != ln.page or other.box[0] <= x1:
            continue
        same_row = abs((other.box[1] + other.box[3]) / 2 - (y0 + y1) / 2) < 0.01
        if same_row and BLOCK_LABEL.search(normalise(other.text)):
            right = min(right, other.box[0] - 0.005)
    up, down = (0.09, 0.07) if SEAL_LABEL.search(normalise(ln.text)) else (0.06, 0.015)
    return (max(0.0, x0 - 0.02), max(0.0, y0 - up), right, min(1.0, y1 + down))


def match_marks(blocks: list[SignatureBlock], marks: list[SignatureMark]) -> None:
    """Assign each mark to one block: its region must cover >= 30 % of the mark; among those, a seal prefers a
    seal label ('盖章') and a signature a signature label, then the nearer label. Blocks with marks are signed."""
    for mi, mark in enumerate(marks):
        best, best_score = None, -1e9
        cx, cy = (mark.box[0] + mark.box[2]) / 2, (mark.box[1] + mark.box[3]) / 2
        for block in blocks:
            if block.page != mark.page or _overlap(mark.box, block.box) < 0.3:
                continue
            is_seal_label = bool(SEAL_LABEL.search(block.label)) and not re.search(r"签字|签名|signature", block.label,
                                                                                   re.I)
            kind_fit = 1.0 if is_seal_label == (mark.kind == "seal") else 0.0
            lx, ly = block.box[0] + 0.02, block.box[3]
            score = kind_fit - abs(cy - ly) - 0.3 * abs(cx - lx)
            if score > best_score:
                best, best_score = block, score
        if best is not None:
            best.marks.append(mi)
            best.signed = True


def _overlap(a: Box, b: Box) -> float:
    """Fraction of box a inside box b."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = max((a[2] - a[0]) * (a[3] - a[1]), 1e-9)
    return ix * iy / area


def iou(a: Box | list[float], b: Box | list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def infer_blocks(blocks: list[SignatureBlock], marks: list[SignatureMark], roles: list[str]) -> None:
    """Marks left unmatched beside the found blocks (same page, same band of the page) whose label OCR lost (a
    seal stamped over it): one party has no block -> a block for it, signed, labelled as inferred."""
    used = {i for b in blocks for i in b.marks}
    spare = [r for r in roles if not any(b.party == r for b in blocks)]
    for mi, mark in enumerate(marks):
        if mi in used or len(spare) != 1:
            continue
        band = [b for b in blocks if b.page == mark.page and b.box[1] - 0.1 <= mark.box[1] <= b.box[3] + 0.1]
        if not band:
            continue
        same = [b for b in blocks if b.party == spare[0] and b.page == mark.page and _overlap(mark.box, b.box) > 0]
        if same:
            same[0].marks.append(mi)
            same[0].signed = True
            continue
        blocks.append(SignatureBlock(page=mark.page, label="(label not read)", party=spare[0], box=mark.box,
                                     signed=True, marks=[mi]))
