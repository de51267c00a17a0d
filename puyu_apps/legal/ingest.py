"""Ingestion: PDF (text layer or OCR per page) and PNG/JPEG/TIFF scans, streamed page by page.

``iter_pages`` opens the document, validates it (typed errors for encrypted, corrupt, empty, unsupported files)
and yields one :class:`PageData` at a time; scanned pages are OCR'd in a small thread pool (tesseract is a child
process, so threads run on all cores) a bounded batch at a time, so memory stays flat on a 500-page PDF.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .._optional import require
from . import ocr
from .errors import CorruptDocumentError, EmptyDocumentError, EncryptedPDFError, UnsupportedFormatError
from .types import Line, PageInfo, Word

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
#: a page with fewer text-layer characters than this is treated as scanned
MIN_TEXT_CHARS = 5
SIG_LABEL = re.compile(r"signature|signed|sign here|\bby:|签字|签名|盖章|签章|（章）|\(章\)", re.I)
_ASCII_END = re.compile(r"[A-Za-z0-9,.;:)%\"']$")
_ASCII_START = re.compile(r"^[A-Za-z0-9(\"'$]")


@dataclass
class IngestConfig:
    lang: str = "auto"          # 'auto' | 'eng' | 'chi_sim'
    ocr_dpi: int = 200
    render_dpi: int = 100       # page images for signatures and the report
    workers: int = 2
    password: str | None = None
    deskew: bool = True
    report_pages: int = 20      # first pages always rendered for the report

    def __post_init__(self) -> None:
        if self.lang not in ("auto", "eng", "chi_sim"):
            raise ValueError(f"lang: expected 'auto', 'eng' or 'chi_sim', got {self.lang!r}")
        for name in ("ocr_dpi", "render_dpi", "workers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)!r}")


@dataclass
class PageData:
    info: PageInfo
    lines: list[Line]
    image: np.ndarray | None = None            # RGB page image (deskewed for scans), None when not rendered
    words: list[Word] = field(default_factory=list)


def join_words(words: list[Word]) -> str:
    """Join words of one line: a space between Latin words and at wide gaps, none between Chinese characters."""
    out = ""
    prev: Word | None = None
    for wd in words:
        if prev is not None:
            h = max(prev.box[3] - prev.box[1], wd.box[3] - wd.box[1], 1e-4)
            wide = (wd.box[0] - prev.box[2]) > 0.2 * h * 1.3  # page fractions: height/width ~ 1.3
            if wide or _ASCII_END.search(out) or _ASCII_START.match(wd.text):
                out += " "
        out += wd.text
        prev = wd
    return out



def words_to_lines(words: list[Word], page: int, gap: float = 0.07) -> list[Line]:
    """Group words into lines by vertical overlap, split a line where the horizontal gap exceeds ``gap`` of the
    page width (two-column signature blocks), order lines top to bottom then left to right."""
    rows: list[list[Word]] = []
    for wd in sorted(words, key=lambda w: ((w.box[1] + w.box[3]) / 2, w.box[0])):
        cy = (wd.box[1] + wd.box[3]) / 2
        if rows:
            last = rows[-1]
            row_cy = sum((w.box[1] + w.box[3]) / 2 for w in last) / len(last)
            h = sorted(w.box[3] - w.box[1] for w in last)[len(last) // 2]
            if abs(cy - row_cy) <= 0.45 * max(h, wd.box[3] - wd.box[1], 1e-4):
                last.append(wd)
                continue
        rows.append([wd])
    lines: list[Line] = []
    for row in rows:
        row.sort(key=lambda w: w.box[0])
        seg: list[Word] = []
        for wd in row:
            if seg and wd.box[0] - seg[-1].box[2] > gap:
                lines.append(_line(seg, page))
                seg = []
            seg.append(wd)
        if seg:
            lines.append(_line(seg, page))
    for i, ln in enumerate(lines):
        for wd in ln.words:
            wd.line = i
    return lines


def _line(words: list[Word], page: int) -> Line:
    box = (min(w.box[0] for w in words), min(w.box[1] for w in words), max(w.box[2] for w in words),
           max(w.box[3] for w in words))
    return Line(text=join_words(words), box=box, page=page, words=list(words))


# -- opening ----------------------------------------------------------------------------------------------------
def open_document(path: Path, password: str | None = None) -> tuple[str, int]:
    """Validate the file; returns (kind 'pdf'|'image', number of pages). Raises the typed errors."""
    if not path.exists():
        raise UnsupportedFormatError(path, "no such file", "check the path")
    suffix = path.suffix.lower()
    head = path.read_bytes()[:8]
    if suffix == ".pdf" or head.startswith(b"%PDF"):
        return "pdf", _pdf_page_count(path, password)
    if suffix in IMAGE_SUFFIXES:
        Image = require("PIL.Image", "legal", "pillow")
        try:
            with Image.open(path) as im:
                n = getattr(im, "n_frames", 1)
                im.load()
        except Exception as exc:
            raise CorruptDocumentError(path, f"the image cannot be decoded ({exc})",
                                       "re-export the scan as PNG, JPEG or TIFF") from exc
        return "image", n
    raise UnsupportedFormatError(path, f"unsupported file type {suffix or '(none)'}",
                                 "give a PDF or a PNG/JPEG/TIFF scan")


def _pdf_page_count(path: Path, password: str | None) -> int:
    pdfium = require("pypdfium2", "legal")
    try:
        doc = pdfium.PdfDocument(str(path), password=password)
    except pdfium.PdfiumError as exc:
        msg = str(exc).lower()
        if _pypdf_pages(path) == 0:
            raise EmptyDocumentError(path, "the PDF has no pages", "give a PDF with at least one page") from exc
        if "password" in msg:
            raise EncryptedPDFError(path, "the PDF is encrypted" + (" and the password is wrong" if password else ""),
                                    "pass the password: params {\"password\": \"...\"}") from exc
        raise CorruptDocumentError(path, f"the PDF cannot be parsed ({exc})",
                                   "check the file is complete; re-export or re-download it") from exc
    try:
        n = len(doc)
    finally:
        doc.close()
    if n == 0:
        raise EmptyDocumentError(path, "the PDF has no pages", "give a PDF with at least one page")
    return n


# -- page iteration ---------------------------------------------------------------------------------------------
def _pypdf_pages(path: Path) -> int | None:
    """pdfium refuses a PDF with an empty page tree; pypdf reads it (None: pypdf cannot either)."""
    try:
        pypdf = require("pypdf", "legal")
        return len(pypdf.PdfReader(str(path)).pages)
    except Exception:
        return None


def iter_pages(path: Path, cfg: IngestConfig, progress: Callable[[int, int, str], None] | None = None,
               ) -> Iterator[PageData]:
    """Yield the document's pages in order, OCR'd where scanned, a bounded batch in flight at a time."""
    kind, n = open_document(path, cfg.password)
    source = _pdf_sources(path, cfg) if kind == "pdf" else _image_sources(path)
    lang_box: list[str] = [] if cfg.lang == "auto" else [cfg.lang]
    batch = max(2, 2 * cfg.workers)
    with ThreadPoolExecutor(max_workers=cfg.workers) as pool:
        pending: list[Any] = []
        for raw in source:
            if raw["kind"] == "scan" and not lang_box:
                lang_box.append(ocr.detect_lang(raw["image"]))
            raw["lang"] = lang_box[0] if lang_box else ""
            pending.append(pool.submit(_finish_page, raw, cfg))
            if len(pending) >= batch:
                page = pending.pop(0).result()
                _report(progress, page, n)
                yield page
        for fut in pending:
            page = fut.result()
            _report(progress, page, n)
            yield page


def _report(progress: Callable[[int, int, str], None] | None, page: PageData, n: int) -> None:
    if progress is not None:
        progress(page.info.page, n, page.info.source)


def _finish_page(raw: dict[str, Any], cfg: IngestConfig) -> PageData:
    no = raw["page"]
    if raw["kind"] == "text":
        words = raw["words"]
        info = PageInfo(page=no, source="text", n_chars=sum(len(w.text) for w in words), width=raw["width"],
                        height=raw["height"])
        return PageData(info=info, lines=words_to_lines(words, no), image=raw.get("image"), words=words)
    image = raw["image"]
    angle = 0.0
    if cfg.deskew:
        image, angle = ocr.deskew(image)
    words, conf = ocr.ocr_words(image, raw["lang"])
    good = [w for w in words if w.conf >= 30 or len(w.text) > 1]
    n_chars = sum(len(w.text) for w in good)
    info = PageInfo(page=no, source="ocr" if n_chars else "empty", lang=raw["lang"], skew_deg=angle,
                    n_chars=n_chars, ocr_conf=round(conf, 1), width=raw["width"], height=raw["height"])
    small = _resize_width(image, int(8.5 * cfg.render_dpi))
    return PageData(info=info, lines=words_to_lines(good, no), image=small, words=good)


def _resize_width(rgb: np.ndarray, width: int) -> np.ndarray:
    cv2 = ocr._cv2()
    h, w = rgb.shape[:2]
    if w <= width:
        return rgb
    return cv2.resize(rgb, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


def _pdf_sources(path: Path, cfg: IngestConfig) -> Iterator[dict[str, Any]]:
    pdfplumber = require("pdfplumber", "legal")
    pdfium = require("pypdfium2", "legal")
    doc = pdfium.PdfDocument(str(path), password=cfg.password)
    try:
        with pdfplumber.open(str(path), password=cfg.password or "") as pdf:
            for i, page in enumerate(pdf.pages):
                no = i + 1
                width, height = float(page.width), float(page.height)
                try:
                    raw_words = page.extract_words(keep_blank_chars=False, use_text_flow=False)
                    words = [Word(text=w["text"], box=(w["x0"] / width, w["top"] / height, w["x1"] / width,
                                                       w["bottom"] / height)) for w in _nonblank(raw_words)]
                    has_marks = bool(page.images or page.curves)
                finally:
                    page.close()  # drop pdfplumber's per-page caches: memory stays flat on long documents
                if sum(len(w.text) for w in words) >= MIN_TEXT_CHARS:
                    text = " ".join(w.text for w in words)
                    need = has_marks or no <= cfg.report_pages or bool(SIG_LABEL.search(text))
                    image = _render(doc[i], cfg.render_dpi) if need else None
                    yield {"kind": "text", "page": no, "words": words, "image": image, "width": width,
                           "height": height}
                else:
                    yield {"kind": "scan", "page": no, "image": _render(doc[i], cfg.ocr_dpi), "width": width,
                           "height": height}
    finally:
        doc.close()


def _nonblank(raw_words: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for w in raw_words:
        if w["text"].strip():
            yield w


def _render(page: Any, dpi: int) -> np.ndarray:
    try:
        bitmap = page.render(scale=dpi / 72.0)
        return np.asarray(bitmap.to_pil().convert("RGB"))
    finally:
        page.close()


def _image_sources(path: Path) -> Iterator[dict[str, Any]]:
    Image = require("PIL.Image", "legal", "pillow")
    with Image.open(path) as im:
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            rgb = np.asarray(im.convert("RGB"))
            yield {"kind": "scan", "page": i + 1, "image": rgb, "width": float(rgb.shape[1]),
                   "height": float(rgb.shape[0])}
