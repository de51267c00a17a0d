"""Ingestion on generated contracts with real tesseract: text layer, OCR (eng, chi_sim), deskew, images,
bad input, and a long PDF streamed page by page."""

from __future__ import annotations

import re
import tracemalloc

import numpy as np
import pytest

from puyu_apps.errors import InvalidInputError
from puyu_apps.legal import (ContractReviewPipeline, CorruptDocumentError, EmptyDocumentError, EncryptedPDFError,
                             UnsupportedFormatError)
from puyu_apps.legal.ingest import IngestConfig, iter_pages
from puyu_apps.legal.metrics import cer
from puyu_apps.legal.ocr import estimate_skew, rotate

TINY = "tiny-random-llama"


def _text(pages) -> str:
    return "\n".join(ln.text for p in pages for ln in p.lines)


def test_digital_pages_use_the_text_layer(contracts):
    path, truth = contracts["en_digital"]
    pages = list(iter_pages(path, IngestConfig()))
    assert [p.info.source for p in pages] == ["text"] * len(truth.page_text)
    assert "Limitation of Liability" in _text(pages)
    assert all(0 <= b <= 1 for p in pages for ln in p.lines for b in ln.box)


@pytest.mark.parametrize("name,lang,max_cer", [("en_scanned", "eng", 0.03), ("zh_scanned", "chi_sim", 0.08)])
def test_scanned_pages_are_ocred(contracts, name, lang, max_cer):
    path, truth = contracts[name]
    pages = list(iter_pages(path, IngestConfig()))
    assert {p.info.source for p in pages} == {"ocr"}
    assert {p.info.lang for p in pages} == {lang}  # 'auto' picked the language
    assert all(abs(p.info.skew_deg) > 0.5 for p in pages)  # the generated scans are rotated ~1 degree
    got = "".join(ln.text for page in pages for ln in page.lines)
    assert cer(got, "".join(truth.page_text)) < max_cer  # whole document (signatures read as text add a few)


def test_deskew_recovers_the_angle(contracts):
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(contracts["en_digital"][0]))
    img = np.asarray(doc[0].render(scale=100 / 72).to_pil().convert("RGB"))
    doc.close()
    for angle in (-2.0, 1.5):
        assert abs(estimate_skew(rotate(img, angle)) + angle) < 0.35


def test_png_and_multi_page_tiff(contracts, tmp_path):
    import cv2
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(contracts["en_digital"][0]))
    frames = [np.asarray(doc[i].render(scale=200 / 72).to_pil().convert("RGB")) for i in range(len(doc))]
    doc.close()
    bgr = [np.ascontiguousarray(f[..., ::-1]) for f in frames]
    assert cv2.imwrite(str(tmp_path / "p2.png"), bgr[1])
    assert cv2.imwritemulti(str(tmp_path / "all.tiff"), bgr)
    png = list(iter_pages(tmp_path / "p2.png", IngestConfig(lang="eng")))
    assert len(png) == 1 and "IN WITNESS" in _text(png)
    tiff = list(iter_pages(tmp_path / "all.tiff", IngestConfig(lang="eng")))
    assert len(tiff) == 2 and "Governing Law" in _text(tiff)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, contracts):
    from pypdf import PdfReader, PdfWriter

    d = tmp_path_factory.mktemp("bad")
    w = PdfWriter()
    w.write(d / "zero.pdf")
    w = PdfWriter()
    for p in PdfReader(contracts["en_digital"][0]).pages:
        w.add_page(p)
    w.encrypt("secret")
    w.write(d / "encrypted.pdf")
    raw = contracts["en_digital"][0].read_bytes()
    (d / "truncated.pdf").write_bytes(raw[: len(raw) // 3])
    (d / "notes.docx").write_bytes(b"PK\x03\x04")
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    w = PdfWriter()
    w.add_blank_page(612, 792)
    w.write(d / "blank.pdf")
    return d


@pytest.mark.parametrize("name,error", [("zero.pdf", EmptyDocumentError), ("encrypted.pdf", EncryptedPDFError),
                                        ("truncated.pdf", CorruptDocumentError), ("notes.docx", UnsupportedFormatError),
                                        ("broken.png", CorruptDocumentError), ("missing.pdf", UnsupportedFormatError)])
def test_bad_input_raises_typed_errors(bad_files, name, error):
    pipe = ContractReviewPipeline(model=TINY)
    with pytest.raises(error) as info:
        pipe(bad_files / name)
    assert isinstance(info.value, InvalidInputError)
    assert name in str(info.value)  # the message names the file


def test_encrypted_pdf_with_password(bad_files):
    result = ContractReviewPipeline(model=TINY, max_explanations=0)(bad_files / "encrypted.pdf", password="secret")
    assert len(result.clauses) >= 12


def test_image_only_blank_page_is_graceful(bad_files):
    result = ContractReviewPipeline(model=TINY, max_explanations=0)(bad_files / "blank.pdf")
    assert result.pages[0].source == "empty" and result.clauses == []
    assert any("no text" in w for w in result.warnings)
    assert {"missing_signature", "missing_date"} <= result.categories()


def test_long_pdf_streams_with_progress_and_bounded_memory(tmp_path):
    from reportlab.pdfgen import canvas

    path = tmp_path / "long.pdf"
    c = canvas.Canvas(str(path))
    for i in range(500):
        c.setFont("Helvetica", 11)
        c.drawString(60, 740, f"{i + 1}. Clause {i + 1}. The Supplier shall deliver the goods on page {i + 1}.")
        c.showPage()
    c.save()
    pipe = ContractReviewPipeline(model=TINY, max_explanations=0, report_pages=3)
    tracemalloc.start()
    events = list(pipe.stream(path))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    progress = [e for e in events if e.kind == "progress" and e.stage == "pages"]
    result = events[-1].result
    assert len(progress) == 500 and progress[-1].fraction == 1.0
    assert result.n_pages == 500 and len(result.pages) == 500
    assert len(result.page_images) <= 3
    assert peak < 200e6, f"peak traced memory {peak / 1e6:.0f} MB"
    assert len(result.clauses) == 500 and re.search(r"Clause 500\b", result.clauses[-1].text)


def test_mixed_document_goes_page_by_page(contracts, tmp_path):
    from pypdf import PdfReader, PdfWriter

    w = PdfWriter()
    w.add_page(PdfReader(contracts["en_digital"][0]).pages[0])   # text layer
    w.add_page(PdfReader(contracts["en_scanned"][0]).pages[1])   # image only
    w.write(tmp_path / "mixed.pdf")
    result = ContractReviewPipeline(model=TINY, max_explanations=0)(tmp_path / "mixed.pdf")
    assert [p.source for p in result.pages] == ["text", "ocr"]
    assert len([c for c in result.clauses if c.number]) == 12
    assert result.parties_signed == {"Provider": True, "Client": True}  # the scanned page's signatures
