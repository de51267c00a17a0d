"""``ContractReviewPipeline``: a PDF or scan in; pages (text layer or OCR), clauses, parties, dates, amounts,
signatures and seals matched to signature blocks, rule-flagged risks explained by the LLM; a typed result out."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from ..core import GenerationConfig
from ..paths import vertical_dir
from ..pipelines.base import Pipeline
from . import rules
from .ingest import SIG_LABEL, IngestConfig, iter_pages, open_document
from .result import ContractReview
from .signatures import detect_marks, find_blocks, infer_blocks, match_marks
from .structure import extract, segment
from .types import Finding, Line, PageInfo, SignatureMark

_DEFAULT_PROMPT = ('Clause from a contract:\n"{clause}"\n\nA rule check flagged this clause as: {labels}.\n'
                   "In one or two sentences, explain the risk of this clause for the party who signs it.")
_DEFAULT_CLASSIFY = ('Contract clause:\n"{clause}"\n\nRisk categories: {categories}.\nWhich of these categories '
                     'does the clause belong to? Answer with the category names separated by commas, or "none".')
_DEFAULT_SYSTEM = "You are a careful contract lawyer. Answer briefly in plain English."
REPORT_WIDTH = 680


class ContractReviewPipeline(Pipeline):
    name = "legal"
    description = "Contract review: PDF/scan -> OCR, clauses, signatures and seals -> risky clauses explained"
    result_type = ContractReview

    def __init__(self, *, lang: str = "auto", workers: int = 2, ocr_dpi: int = 200, explain: bool = True,
                 max_explanations: int = 12, max_new_tokens: int = 60, report_pages: int = 20,
                 llm_classify: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        IngestConfig(lang=lang, workers=workers, ocr_dpi=ocr_dpi)  # validates, naming the bad field
        if max_explanations < 0:
            raise ValueError(f"max_explanations: must be >= 0, got {max_explanations}")
        self.lang, self.workers, self.ocr_dpi = lang, workers, ocr_dpi
        self.explain, self.max_explanations = explain, max_explanations
        self.max_new_tokens, self.report_pages = max_new_tokens, report_pages
        self.llm_classify = llm_classify

    def init_parameters(self) -> dict[str, Any]:
        return {**super().init_parameters(), "lang": self.lang, "workers": self.workers, "ocr_dpi": self.ocr_dpi,
                "explain": self.explain, "max_explanations": self.max_explanations,
                "max_new_tokens": self.max_new_tokens, "report_pages": self.report_pages,
                "llm_classify": self.llm_classify}

    # -- stages ---------------------------------------------------------------------------------------------
    def preprocess(self, inputs: Any, **params: Any) -> dict[str, Any]:
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != 1:
                raise _too_many_inputs(inputs)
            inputs = inputs[0]
        path = Path(inputs)
        cfg = IngestConfig(lang=params.get("lang", self.lang), workers=int(params.get("workers", self.workers)),
                           ocr_dpi=int(params.get("ocr_dpi", self.ocr_dpi)), password=params.get("password"),
                           report_pages=int(params.get("report_pages", self.report_pages)))
        kind, n_pages = open_document(path, cfg.password)  # typed errors before any model loads
        return {"path": path, "cfg": cfg, "kind": kind, "n_pages": n_pages,
                "explain": bool(params.get("explain", self.explain)),
                "max_explanations": int(params.get("max_explanations", self.max_explanations)),
                "llm_classify": bool(params.get("llm_classify", self.llm_classify))}

    def _forward(self, prepared: dict[str, Any]) -> dict[str, Any]:
        path, cfg, n = prepared["path"], prepared["cfg"], prepared["n_pages"]
        lines: list[Line] = []
        pages: list[PageInfo] = []
        marks: list[SignatureMark] = []
        images: dict[int, str] = {}
        warnings: list[str] = []

        def on_page(no: int, total: int, source: str) -> None:
            self.progress("pages", f"page {no}/{total} ({source})", no / total)

        for page in iter_pages(path, cfg, on_page):
            pages.append(page.info)
            if page.info.source == "empty":
                warnings.append(f"page {page.info.page} has no text (blank or unreadable)")
            page_marks: list[SignatureMark] = []
            if page.image is not None:
                page_marks = detect_marks(page.image, page.words, page.info.page)
                marks.extend(page_marks)
                text = " ".join(ln.text for ln in page.lines)
                if page.info.page <= cfg.report_pages or page_marks or SIG_LABEL.search(text):
                    images[page.info.page] = _png_b64(page.image)
            for ln in page.lines:
                ln.words = []  # boxes are kept per line; words are dropped to keep long documents small
            lines.extend(page.lines)
        self.progress("structure", "clauses, parties, amounts, signatures", None)
        clauses = segment(lines)
        st = extract(lines, clauses)
        blocks = find_blocks(lines, [p.role for p in st.parties], {p.role: p.name for p in st.parties})
        match_marks(blocks, marks)
        infer_blocks(blocks, marks, [p.role for p in st.parties])
        findings = rules.review_clauses(st) + rules.checks(st, blocks, n)
        if prepared["llm_classify"]:
            findings += self._classify(st.clauses)
        if prepared["explain"] and prepared["max_explanations"]:
            self._explain(findings, prepared["max_explanations"])
        return {"path": path, "n_pages": n, "pages": pages, "structure": st, "marks": marks, "blocks": blocks,
                "findings": findings, "images": images, "warnings": warnings}

    def postprocess(self, outputs: dict[str, Any]) -> ContractReview:
        st, blocks = outputs["structure"], outputs["blocks"]
        roles = [p.role for p in st.parties] or sorted({b.party for b in blocks if b.party})
        signed = {r: any(b.signed for b in blocks if b.party == r) for r in roles}
        if not any(p.n_chars for p in outputs["pages"]):
            outputs["warnings"].append("no text was found on any page: is this a blank or photo-only document?")
        return ContractReview(
            vertical=self.name, source=str(outputs["path"]), n_pages=outputs["n_pages"], pages=outputs["pages"],
            clauses=st.clauses, parties=st.parties, effective_date=st.effective_date, dates=st.dates, term=st.term,
            amounts=st.amounts, governing_law=st.governing_law, jurisdiction=st.jurisdiction,
            signatures=outputs["marks"], signature_blocks=blocks, parties_signed=signed,
            findings=outputs["findings"], page_images=outputs["images"], warnings=outputs["warnings"])

    # -- the LLM ----------------------------------------------------------------------------------------------
    def _explain(self, findings: list[Finding], limit: int) -> None:
        """One short explanation per flagged clause (most severe first), shared by its findings."""
        template, system = _prompt("explain.txt", _DEFAULT_PROMPT), _prompt("system.txt", _DEFAULT_SYSTEM)
        by_clause: dict[int, list[Finding]] = {}
        order = {"high": 0, "medium": 1, "low": 2}
        for f in sorted(findings, key=lambda f: order[f.severity]):
            if f.clause_index is not None and f.source == "rule":
                by_clause.setdefault(f.clause_index, []).append(f)
        todo = list(by_clause.items())[:limit]
        cfg = GenerationConfig(max_new_tokens=self.max_new_tokens, temperature=0.0)
        for i, (_, group) in enumerate(todo):
            self.progress("explain", f"clause {i + 1}/{len(todo)}", (i + 1) / len(todo))
            labels = ", ".join(rules.BY_ID[f.category].label for f in group if f.category in rules.BY_ID)
            prompt = template.format(clause=group[0].clause_text[:700], labels=labels)
            out = self.lm.generate(prompt, cfg, adapter=self._adapter_name, system=system)
            text = _tidy(out.text, out.finish_reason)
            for f in group:
                f.explanation = text

    def _classify(self, clauses: list) -> list[Finding]:
        """Optional second opinion (``llm_classify=True``): the model names categories for each clause; those
        the rules did not give become findings with ``source="llm"``. Off by default: the 135M base model is
        not reliable at this; meant for the legal adapter."""
        template = _prompt("classify.txt", _DEFAULT_CLASSIFY)
        cfg = GenerationConfig(max_new_tokens=24, temperature=0.0)
        names = ", ".join(c.label for c in rules.CATEGORIES)
        numbered = [c for c in clauses if c.number]
        out: list[Finding] = []
        for i, clause in enumerate(numbered):
            self.progress("classify", f"clause {i + 1}/{len(numbered)}", (i + 1) / len(numbered))
            answer = self.lm.generate(template.format(clause=clause.text[:700], categories=names), cfg,
                                      adapter=self._adapter_name).text
            for cid in rules.parse_categories(answer):
                if cid in clause.categories:
                    continue
                clause.categories.append(cid)
                cat = rules.BY_ID[cid]
                out.append(Finding(category=cid, severity=cat.severity, clause_text=clause.text, page=clause.page,
                                   box=clause.box, clause_index=clause.index, source="llm",
                                   reason=f"{cat.label}: named by the model, not by a rule; {cat.reason}"))
        return out

    @classmethod
    def add_cli_commands(cls, subparsers: Any) -> None:
        from .cli import add_commands

        add_commands(subparsers)


def _too_many_inputs(inputs: Any) -> Exception:
    from ..errors import InvalidInputError

    return InvalidInputError(f"the legal vertical reviews one document at a time, got {len(inputs)} inputs; "
                             "run it once per file")


def _tidy(text: str, finish_reason: str) -> str:
    """First paragraph; when the token budget cut it, drop the unfinished last sentence."""
    text = text.strip().split("\n\n")[0].strip()
    if finish_reason == "length" and "." in text[:-1]:
        text = text[: text.rindex(".", 0, len(text) - 1) + 1] if not text.endswith(".") else text
    return text or "(the model gave no explanation)"


def _prompt(name: str, default: str) -> str:
    path = vertical_dir("legal") / "prompts" / name
    return path.read_text(encoding="utf-8").strip() if path.exists() else default


def _png_b64(rgb: Any) -> str:
    from PIL import Image

    im = Image.fromarray(rgb)
    if im.width > REPORT_WIDTH:
        im = im.resize((REPORT_WIDTH, round(im.height * REPORT_WIDTH / im.width)), Image.LANCZOS)
    buf = io.BytesIO()
    im = im.convert("L") if _is_gray(rgb) else im.convert("RGB").quantize(64)  # palette PNG: ~5x smaller
    im.save(buf, "PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _is_gray(rgb: Any) -> bool:
    return rgb.ndim == 2 or bool((abs(rgb[..., 0].astype(int) - rgb[..., 2]) < 12).all())
