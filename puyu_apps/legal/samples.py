"""Generated sample contracts (digital PDF via reportlab, scanned = the pages rasterised, rotated and noised,
saved as an image-only PDF) with planted risky clauses, signed and empty signature blocks, seals, and a JSON
ground truth for tests and ``benchmarks/legal.py``. Companies and people are fictitious."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from . import sample_text as T

ZH_FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
MARGIN = 64.0


@dataclass
class SampleSpec:
    lang: str = "en"                       # 'en' | 'zh'
    scanned: bool = False
    signed: tuple[bool, bool] = (True, True)
    seals: bool | None = None              # red seals on signed blocks (default: Chinese only)
    mismatch: bool = False                 # fee in words disagrees with the figures
    missing_date: bool = False
    seed: int = 0
    skew_deg: float = 1.2                  # rotation of scanned pages
    dpi: int = 200

    def __post_init__(self) -> None:
        if self.lang not in ("en", "zh"):
            raise ValueError(f"lang: expected 'en' or 'zh', got {self.lang!r}")
        if self.seals is None:
            self.seals = self.lang == "zh"


@dataclass
class Truth:
    risks: list[str] = field(default_factory=list)
    signatures: list[dict[str, Any]] = field(default_factory=list)   # page, box (fractions), kind, party
    parties_signed: dict[str, bool] = field(default_factory=dict)
    page_text: list[str] = field(default_factory=list)
    n_clauses: int = 0
    mismatch: bool = False
    missing_date: bool = False
    spec: dict[str, Any] = field(default_factory=dict)


def make_contract(path: Path | str, spec: SampleSpec | None = None) -> Truth:
    """Write one contract to ``path`` (a .pdf) and its ground truth next to it (``<path>.truth.json``)."""
    spec = spec or SampleSpec()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    digital = path if not spec.scanned else path.with_suffix(".digital.tmp.pdf")
    truth = _write_digital(digital, spec)
    truth.page_text = _page_text(digital)
    if spec.scanned:
        _scan(digital, path, spec)
        digital.unlink()
    truth.spec = {k: v for k, v in asdict(spec).items()}
    Path(str(path) + ".truth.json").write_text(json.dumps(asdict(truth), ensure_ascii=False, indent=1), "utf-8")
    return truth


def make_samples(out_dir: Path | str) -> list[Path]:
    """The four ``puyu legal make-sample`` contracts: English and Chinese, digital and scanned."""
    out = Path(out_dir)
    specs = {
        "contract_en_digital.pdf": SampleSpec("en", signed=(True, False), mismatch=True),
        "contract_en_scanned.pdf": SampleSpec("en", scanned=True, signed=(True, True), seed=1),
        "contract_zh_digital.pdf": SampleSpec("zh", signed=(True, True), seed=2),
        "contract_zh_scanned.pdf": SampleSpec("zh", scanned=True, signed=(False, True), mismatch=True, seed=3),
    }
    paths = []
    for name, spec in specs.items():
        make_contract(out / name, spec)
        paths.append(out / name)
    return paths


# -- digital --------------------------------------------------------------------------------------------------
def _write_digital(path: Path, spec: SampleSpec) -> Truth:
    canvas = require("reportlab.pdfgen.canvas", "legal", "reportlab")
    pagesizes = require("reportlab.lib.pagesizes", "legal", "reportlab")
    rng = np.random.default_rng(spec.seed)
    zh = spec.lang == "zh"
    size = pagesizes.A4 if zh else pagesizes.letter
    font, bold = _fonts(zh)
    c = canvas.Canvas(str(path), pagesize=size)
    w, h = size
    truth = Truth(mismatch=spec.mismatch, missing_date=spec.missing_date)
    state = {"y": h - MARGIN, "page": 1}

    def newline(dy: float) -> None:
        state["y"] -= dy
        if state["y"] < MARGIN:
            c.showPage()
            state["page"] += 1
            state["y"] = h - MARGIN - 11

    def para(text: str, fnt: str, fs: float, indent: float = 0.0) -> None:
        for ln in _wrap(text, fnt, fs, w - 2 * MARGIN - indent):
            newline(fs * 1.5)
            c.setFont(fnt, fs)
            c.drawString(MARGIN + indent, state["y"], ln)

    date = "____________" if spec.missing_date else ("2025年3月3日" if zh else "March 3, 2025")
    fee, fee_words = _fee(zh, spec.mismatch)
    c.setFont(bold, 16)
    c.drawCentredString(w / 2, state["y"] - 10, T.ZH_TITLE if zh else T.EN_TITLE)
    newline(24)
    if zh:
        for ln in T.ZH_PREAMBLE_LINES:
            para(ln.format(date=date), font, 11)
    else:
        para(T.EN_PREAMBLE.format(date=date), font, 11)
    clauses = T.ZH_CLAUSES if zh else T.EN_CLAUSES
    for i, (cat, heading, body) in enumerate(clauses, start=1):
        body = body.format(fee=fee, fee_words=fee_words)
        newline(5)
        head = f"{T.zh_clause_number(i)} {heading}" if zh else f"{i}. {heading}."
        para(f"{head} {body}", font, 11)
        if cat:
            truth.risks.append(cat)
    truth.n_clauses = len(clauses)
    if state["y"] < MARGIN + 170:
        c.showPage()
        state["page"] += 1
        state["y"] = h - MARGIN
    newline(20)
    if not zh:
        para("IN WITNESS WHEREOF, the parties have signed this Agreement on the dates below.", font, 11)
    _signature_block(c, spec, truth, state, rng, font, w, h)
    c.showPage()
    c.save()
    return truth


def _fonts(zh: bool) -> tuple[str, str]:
    if not zh:
        return "Helvetica", "Helvetica-Bold"
    pdfmetrics = require("reportlab.pdfbase.pdfmetrics", "legal", "reportlab")
    ttfonts = require("reportlab.pdfbase.ttfonts", "legal", "reportlab")
    if "WQY" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(ttfonts.TTFont("WQY", ZH_FONT, subfontIndex=0))
    return "WQY", "WQY"


def _fee(zh: bool, mismatch: bool) -> tuple[str, str]:
    if zh:
        return "50,000.00", ("肆万元整" if mismatch else "伍万元整")
    return "50,000", ("Forty-Five Thousand US Dollars" if mismatch else "Fifty Thousand US Dollars")


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Greedy wrap: by words for Latin text, by characters for Chinese."""
    pdfmetrics = require("reportlab.pdfbase.pdfmetrics", "legal", "reportlab")
    tokens = text.split(" ") if text.isascii() else list(text)
    sep = " " if text.isascii() else ""
    lines, cur = [], ""
    for tok in tokens:
        cand = f"{cur}{sep}{tok}" if cur else tok
        if pdfmetrics.stringWidth(cand, font, size) > width and cur:
            lines.append(cur)
            cur = tok
        else:
            cur = cand
    return lines + ([cur] if cur else [])


def _signature_block(c: Any, spec: SampleSpec, truth: Truth, state: dict[str, Any], rng: np.random.Generator,
                     font: str, w: float, h: float) -> None:
    zh = spec.lang == "zh"
    parties = T.ZH_PARTIES if zh else T.EN_PARTIES
    cols = [MARGIN, w / 2 + 10]
    y0 = state["y"] - 40
    c.setFont(font, 10.5)
    for (role, name), x, signed in zip(parties, cols, spec.signed):
        truth.parties_signed[role] = signed
        if zh:
            c.drawString(x, y0, f"{role}（盖章）：{name}")
            c.drawString(x, y0 - 60, "签字：________________")
            c.drawString(x, y0 - 84, "日期：" + ("2025年3月5日" if signed else "____________"))
            sig_x, sig_y = x + 34, y0 - 58
        else:
            c.drawString(x, y0, f"{role}: {name}")
            c.drawString(x, y0 - 60, "Signature: ____________________")
            c.drawString(x, y0 - 84, "Name: ____________________")
            c.drawString(x, y0 - 108, "Date: " + ("March 5, 2025" if signed else "____________"))
            sig_x, sig_y = x + 58, y0 - 58
        if not signed:
            continue
        box = _scribble(c, rng, sig_x, sig_y)
        truth.signatures.append({"page": state["page"], "box": _frac(box, w, h), "kind": "signature",
                                 "party": role})
        if spec.seals:
            box = _seal(c, x + 95, y0 - 10, name)
            truth.signatures.append({"page": state["page"], "box": _frac(box, w, h), "kind": "seal",
                                     "party": role})


def _frac(box: tuple[float, float, float, float], w: float, h: float) -> list[float]:
    """reportlab (x0, y0, x1, y1) bottom-left origin -> top-left page fractions."""
    x0, y0, x1, y1 = box
    return [round(x0 / w, 4), round(1 - y1 / h, 4), round(x1 / w, 4), round(1 - y0 / h, 4)]


def _scribble(c: Any, rng: np.random.Generator, x: float, y: float) -> tuple[float, float, float, float]:
    """A handwriting-like signature: one or two 'words' of looping strokes (sums of random sinusoids), sometimes
    with an underline flourish, in black or blue ink of varied width; returns its bounding box."""
    colour = [(0.05, 0.1, 0.45), (0.1, 0.1, 0.1), (0.0, 0.0, 0.3)][int(rng.integers(0, 3))]
    c.setStrokeColorRGB(*colour)
    lw = float(rng.uniform(0.9, 1.9))
    c.setLineWidth(lw)
    xs_all, ys_all = [], []
    n_words = int(rng.integers(1, 3))
    cursor = x
    for _ in range(n_words):
        width = float(rng.uniform(45, 150) / n_words)
        height = float(rng.uniform(16, 32))
        n = 120
        t = np.linspace(0, 1, n)
        k = rng.uniform(2, 6) * (width / 70)
        xs = cursor + width * t + rng.uniform(3, 10) * np.sin(2 * np.pi * k * t + rng.uniform(0, 6))
        ys = y + height * (0.5 + 0.45 * np.sin(2 * np.pi * (k + 1.5) * t + rng.uniform(0, 6)) * np.hanning(n) ** 0.3)
        _stroke(c, xs, ys)
        xs_all.append(xs)
        ys_all.append(ys)
        cursor = float(xs.max()) + float(rng.uniform(6, 14))
    if rng.random() < 0.35:  # underline flourish
        fx = np.linspace(x - 4, cursor, 40)
        fy = y - 2 + 3 * np.sin(np.linspace(0, np.pi, 40))
        _stroke(c, fx, fy)
        xs_all.append(fx)
        ys_all.append(fy)
    c.setStrokeColorRGB(0, 0, 0)
    xs, ys = np.concatenate(xs_all), np.concatenate(ys_all)
    pad = lw / 2 + 0.5
    return float(xs.min() - pad), float(ys.min() - pad), float(xs.max() + pad), float(ys.max() + pad)


def _stroke(c: Any, xs: np.ndarray, ys: np.ndarray) -> None:
    path = c.beginPath()
    path.moveTo(xs[0], ys[0])
    for i in range(1, len(xs) - 2, 3):
        path.curveTo(xs[i], ys[i], xs[i + 1], ys[i + 1], xs[i + 2], ys[i + 2])
    c.drawPath(path, stroke=1, fill=0)


def _seal(c: Any, cx: float, cy: float, name: str) -> tuple[float, float, float, float]:
    """A red company seal: ring, star, name; returns its bounding box."""
    r = 38.0
    c.saveState()
    c.setStrokeColorRGB(0.85, 0.05, 0.05)
    c.setFillColorRGB(0.85, 0.05, 0.05)
    c.setLineWidth(2.6)
    c.circle(cx, cy, r, stroke=1, fill=0)
    pts = [(cx + 11 * np.cos(np.pi / 2 + i * 4 * np.pi / 5), cy + 6 + 11 * np.sin(np.pi / 2 + i * 4 * np.pi / 5))
           for i in range(5)]
    path = c.beginPath()
    path.moveTo(*pts[0])
    for p in pts[1:]:
        path.lineTo(*p)
    path.close()
    c.drawPath(path, stroke=0, fill=1)
    c.setFont(c._fontname, 6)
    c.drawCentredString(cx, cy - 16, name[:8])
    c.drawCentredString(cx, cy - 24, "合同专用章")
    c.restoreState()
    return cx - r - 1.3, cy - r - 1.3, cx + r + 1.3, cy + r + 1.3


# -- scanned --------------------------------------------------------------------------------------------------
def _page_text(path: Path) -> list[str]:
    pdfplumber = require("pdfplumber", "legal")
    with pdfplumber.open(str(path)) as pdf:
        return [p.extract_text() or "" for p in pdf.pages]


def _scan(digital: Path, out: Path, spec: SampleSpec) -> None:
    pdfium = require("pypdfium2", "legal")
    Image = require("PIL.Image", "legal", "pillow")
    ImageFilter = require("PIL.ImageFilter", "legal", "pillow")
    rng = np.random.default_rng(spec.seed + 100)
    doc = pdfium.PdfDocument(str(digital))
    images = []
    try:
        for i in range(len(doc)):
            page = doc[i]
            img = page.render(scale=spec.dpi / 72.0).to_pil().convert("RGB")
            page.close()
            angle = spec.skew_deg * (1 if i % 2 == 0 else -0.7)
            img = img.rotate(angle, resample=Image.BICUBIC, fillcolor=(255, 255, 255))
            img = img.filter(ImageFilter.GaussianBlur(0.6))
            arr = np.asarray(img).astype(np.int16)
            arr = arr + rng.normal(0, 6, arr.shape[:2])[..., None].astype(np.int16) - 8  # paper grain, toner
            images.append(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)))
    finally:
        doc.close()
    images[0].save(str(out), "PDF", resolution=float(spec.dpi), save_all=True, append_images=images[1:])
