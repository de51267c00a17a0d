"""The typed review result with its text and annotated HTML renderings."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from pydantic import Field

from ..pipelines.result import PipelineResult
from .types import Amount, Clause, Finding, PageInfo, Party, SignatureBlock, SignatureMark

_SEV_COLOUR = {"high": "#d62728", "medium": "#ff7f0e", "low": "#1f77b4"}
_SEV_ORDER = {"high": 0, "medium": 1, "low": 2}
_SEV_RGB = {"high": (0.84, 0.15, 0.16), "medium": (1.0, 0.5, 0.05), "low": (0.12, 0.47, 0.71)}
_CJK_FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"


def _pdf_font() -> str:
    """WenQuanYi Micro Hei when installed (Chinese text), else Helvetica."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if "WQY" in pdfmetrics.getRegisteredFontNames():
        return "WQY"
    if Path(_CJK_FONT).exists():
        pdfmetrics.registerFont(TTFont("WQY", _CJK_FONT, subfontIndex=0))
        return "WQY"
    return "Helvetica"


class ContractReview(PipelineResult):
    source: str
    n_pages: int
    pages: list[PageInfo] = []
    clauses: list[Clause] = []
    parties: list[Party] = []
    effective_date: str | None = None
    dates: list[str] = []
    term: str | None = None
    amounts: list[Amount] = []
    governing_law: str | None = None
    jurisdiction: str | None = None
    signatures: list[SignatureMark] = []
    signature_blocks: list[SignatureBlock] = []
    parties_signed: dict[str, bool] = {}
    findings: list[Finding] = []
    page_images: dict[int, str] = Field(default_factory=dict, exclude=True,
                                        description="base64 PNG thumbnails for the HTML report (not in the JSON)")

    def categories(self) -> set[str]:
        return {f.category for f in self.findings}

    def to_text(self) -> str:
        out = [f"Contract review of {self.source}: {self.n_pages} page(s), {len(self.clauses)} clause(s)"]
        src = {s: sum(p.source == s for p in self.pages) for s in ("text", "ocr", "empty")}
        out.append(f"pages: {src['text']} text layer, {src['ocr']} OCR, {src['empty']} without text")
        if self.parties:
            out.append("parties: " + "; ".join(f"{p.role} = {p.name}" for p in self.parties))
        out.append(f"effective date: {self.effective_date or '(none found)'}   term: {self.term or '(none found)'}")
        if self.amounts:
            out.append("amounts: " + "; ".join(f"{a.value:,.2f} {a.currency}" for a in self.amounts))
        out.append(f"governing law: {self.governing_law or '(none found)'}   forum: {self.jurisdiction or '-'}")
        signed = ", ".join(f"{k}: {'signed' if v else 'NOT signed'}" for k, v in self.parties_signed.items())
        out.append(f"signatures: {sum(m.kind == 'signature' for m in self.signatures)} signature(s), "
                   f"{sum(m.kind == 'seal' for m in self.signatures)} seal(s); {signed or 'no parties found'}")
        empty = [b for b in self.signature_blocks if not b.signed]
        if empty:
            out.append("empty signature blocks: " + "; ".join(f"p{b.page} {b.party or '?'} '{b.label}'" for b in empty))
        out.append(f"\nfindings ({len(self.findings)}):")
        for f in sorted(self.findings, key=lambda f: (_SEV_ORDER[f.severity], f.page)):
            clause = (f.clause_text[:110] + "...") if len(f.clause_text) > 110 else f.clause_text
            out.append(f"- [{f.severity.upper()}] {f.category} (page {f.page}): {f.reason}")
            if clause:
                out.append(f"    clause: {clause}")
            if f.explanation:
                out.append(f"    model: {f.explanation}")
        if self.warnings:
            out.append("\nwarnings: " + "; ".join(self.warnings))
        return "\n".join(out)

    def to_html(self) -> str:
        """A self-contained report: the summary, the findings table, and page images with the flagged clauses
        highlighted and the signature marks / signature blocks boxed."""
        e = html.escape
        rows = []
        for f in sorted(self.findings, key=lambda f: (_SEV_ORDER[f.severity], f.page)):
            rows.append(f"<tr><td style='color:{_SEV_COLOUR[f.severity]}'><b>{e(f.severity)}</b></td>"
                        f"<td>{e(f.category)}</td><td>{f.page}</td><td>{e(f.clause_text[:300])}</td>"
                        f"<td>{e(f.reason)}<br><i>{e(f.explanation)}</i></td></tr>")
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'><title>Contract review</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:4px;vertical-align:top;font-size:13px}.page{position:relative;display:inline-block;"
            "margin:1em 1em 0 0;border:1px solid #999;width:640px}.page img{width:100%;display:block}"
            ".box{position:absolute;box-sizing:border-box}</style></head><body>",
            f"<h1>Contract review: {e(self.source)}</h1><pre>{e(self._summary())}</pre>",
            "<h2>Findings</h2><table><tr><th>severity</th><th>category</th><th>page</th><th>clause</th>"
            "<th>reason</th></tr>" + "".join(rows) + "</table><h2>Pages</h2>",
        ]
        for page, b64 in sorted(self.page_images.items()):
            boxes = [self._div(f.box, _SEV_COLOUR[f.severity], f"{f.category}: {f.reason}", fill=True)
                     for f in self.findings if f.page == page and f.source != "check"]
            boxes += [self._div(b.box, "#2ca02c" if b.signed else "#d62728",
                                f"signature block '{b.label}' ({b.party or '?'}): "
                                f"{'signed' if b.signed else 'EMPTY'}", dashed=True)
                      for b in self.signature_blocks if b.page == page]
            boxes += [self._div(m.box, "#9467bd", f"{m.kind} {m.confidence:.2f}")
                      for m in self.signatures if m.page == page]
            parts.append(f"<div class='page'><img alt='page {page}' src='data:image/png;base64,{b64}'>"
                         + "".join(boxes) + f"<div>page {page}</div></div>")
        parts.append("</body></html>")
        return "".join(parts)

    def to_pdf(self, path: str | Path) -> Path:
        """An annotated PDF: a summary page, then each kept page image with the flagged clauses, signature blocks
        (green signed, red empty) and signature/seal marks drawn."""
        from .._optional import require

        canvas = require("reportlab.pdfgen.canvas", "legal", "reportlab")
        utils = require("reportlab.lib.utils", "legal", "reportlab")
        font = _pdf_font()
        path = Path(path)
        c = canvas.Canvas(str(path), pagesize=(595, 842))
        y = 800.0
        c.setFont(font, 9)
        for line in self.to_text().splitlines():
            for chunk in [line[i:i + 95] for i in range(0, max(len(line), 1), 95)]:
                if y < 40:
                    c.showPage()
                    c.setFont(font, 9)
                    y = 800.0
                c.drawString(36, y, chunk)
                y -= 12
        c.showPage()
        for page, b64 in sorted(self.page_images.items()):
            img = utils.ImageReader(io.BytesIO(base64.b64decode(b64)))
            iw, ih = img.getSize()
            w, h = 595.0, 595.0 * ih / iw
            c.setPageSize((w, h))
            c.drawImage(img, 0, 0, w, h)

            def rect(box: Any, colour: tuple[float, float, float], dash: bool = False, width: float = 1.5) -> None:
                x0, y0, x1, y1 = box
                c.setStrokeColorRGB(*colour)
                c.setLineWidth(width)
                c.setDash(4, 3) if dash else c.setDash()
                c.rect(x0 * w, h - y1 * h, (x1 - x0) * w, (y1 - y0) * h, stroke=1, fill=0)

            for f in self.findings:
                if f.page == page and f.source != "check":
                    rect(f.box, _SEV_RGB[f.severity])
            for b in self.signature_blocks:
                if b.page == page:
                    rect(b.box, (0.17, 0.63, 0.17) if b.signed else (0.84, 0.15, 0.16), dash=True)
            for m in self.signatures:
                if m.page == page:
                    rect(m.box, (0.58, 0.4, 0.74), width=2.5)
            c.showPage()
        c.save()
        return path

    def _summary(self) -> str:
        return self.to_text().split("\nfindings")[0]

    @staticmethod
    def _div(box: Any, colour: str, title: str, fill: bool = False, dashed: bool = False) -> str:
        x0, y0, x1, y1 = box
        bg = f"background:{colour}22;" if fill else ""
        style = "dashed" if dashed else "solid"
        return (f"<div class='box' title='{html.escape(title, quote=True)}' style='left:{x0 * 100:.2f}%;"
                f"top:{y0 * 100:.2f}%;width:{(x1 - x0) * 100:.2f}%;height:{(y1 - y0) * 100:.2f}%;"
                f"border:2px {style} {colour};{bg}'></div>")
