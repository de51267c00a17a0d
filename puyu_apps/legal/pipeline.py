"""``ContractReviewPipeline``: a PDF or scan in; pages (text layer or OCR), clauses, parties, dates, amounts,
signatures and seals matched to signature blocks, rule-flagged risks explained by the LLM; a typed result out.

With the legal LoRA adapter loaded (``verticals/legal/adapter/``, trained by ``puyu finetune --vertical legal`` on
:mod:`puyu_apps.legal.training_data`) each clause goes to the model in the one-clause review prompt of
:mod:`puyu_apps.legal.review`; its answer (category, risk, explanation) explains the rule findings and adds the
categories the rules missed as ``source="llm"`` findings. The rules stay the source of truth: the model never
removes a rule finding."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import Any, ClassVar

from ..core import GenerationConfig
from ..paths import vertical_dir
from ..pipelines.base import Pipeline
from . import review, rules
from .ingest import SIG_LABEL, IngestConfig, iter_pages, open_document
from .result import ContractReview
from .signatures import detect_marks, find_blocks, infer_blocks, match_marks
from .structure import extract, segment
from .types import Finding, Line, PageInfo, SignatureMark

_DEFAULT_PROMPT = ('Clause from a contract:\n"{clause}"\n\nA rule check flagged this clause as: {labels}.\n'
                   "In one or two sentences, explain the risk of this clause for the party who signs it.")
_DEFAULT_SYSTEM = "You are a careful contract lawyer. Answer briefly in plain English."
REPORT_WIDTH = 680
#: the review answer is a first line plus one sentence (the training targets stay under 80 tokens)
REVIEW_MAX_NEW_TOKENS = 96
#: the base model's categories (``llm_classify=True`` without an adapter): the answer's first line only
CLASSIFY_MAX_NEW_TOKENS = 24


class ContractReviewPipeline(Pipeline):
    name = "legal"
    description = "Contract review: PDF/scan -> OCR, clauses, signatures and seals -> risky clauses explained"
    result_type = ContractReview
    #: ``puyu eval --vertical legal``: category accuracy / macro-F1, risk level, format, quoted values
    eval_scorer: ClassVar[Any] = staticmethod(review.score)

    def __init__(self, *, lang: str = "auto", workers: int = 2, ocr_dpi: int = 200, explain: bool = True,
                 max_explanations: int = 12, max_new_tokens: int = 60, report_pages: int = 20,
                 llm_classify: bool | None = None, max_reviews: int = 60, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        IngestConfig(lang=lang, workers=workers, ocr_dpi=ocr_dpi)  # validates, naming the bad field
        if max_explanations < 0:
            raise ValueError(f"max_explanations: must be >= 0, got {max_explanations}")
        if max_reviews < 0:
            raise ValueError(f"max_reviews: must be >= 0, got {max_reviews}")
        if llm_classify not in (None, True, False):
            raise ValueError(f"llm_classify: must be true, false or null (on when an adapter is loaded), "
                             f"got {llm_classify!r}")
        self.lang, self.workers, self.ocr_dpi = lang, workers, ocr_dpi
        self.explain, self.max_explanations = explain, max_explanations
        self.max_new_tokens, self.report_pages = max_new_tokens, report_pages
        self.llm_classify, self.max_reviews = llm_classify, max_reviews

    @classmethod
    def make_training_data(cls, out_dir: str | Path, n_train: int = 3000, n_eval: int = 200,
                           seed: int = 0) -> tuple[Path, Path]:
        """``train.jsonl`` and the held-out ``eval.jsonl`` for the legal adapter (see
        :func:`puyu_apps.legal.training_data.write_splits`)."""
        from .training_data import write_splits

        return write_splits(out_dir, n_train=n_train, n_eval=n_eval, seed=seed)

    def init_parameters(self) -> dict[str, Any]:
        return {**super().init_parameters(), "lang": self.lang, "workers": self.workers, "ocr_dpi": self.ocr_dpi,
                "explain": self.explain, "max_explanations": self.max_explanations,
                "max_new_tokens": self.max_new_tokens, "report_pages": self.report_pages,
                "llm_classify": self.llm_classify, "max_reviews": self.max_reviews}

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
                "llm_classify": _tristate(params.get("llm_classify", self.llm_classify)),
                "max_reviews": int(params.get("max_reviews", self.max_reviews))}

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
        explain = prepared["max_explanations"] if prepared["explain"] else 0
        adapter = self._adapter_name is not None
        classify = adapter if prepared["llm_classify"] is None else prepared["llm_classify"]
        if adapter:  # the adapter answers the review prompt: category, risk and explanation in one call
            findings += self._review(st.clauses, findings, explain=explain, classify=classify,
                                     max_reviews=prepared["max_reviews"], attach=bool(explain),
                                     max_new_tokens=max(self.max_new_tokens, REVIEW_MAX_NEW_TOKENS))
        else:
            if classify:
                findings += self._review(st.clauses, findings, explain=0, classify=True,  # categories only:
                                         max_reviews=prepared["max_reviews"], attach=False,  # the first line
                                         stage="classify", max_new_tokens=CLASSIFY_MAX_NEW_TOKENS)
            if explain:
                self._explain(findings, explain)
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

    def _review(self, clauses: list, findings: list[Finding], *, explain: int, classify: bool, max_reviews: int,
                attach: bool, stage: str = "review", max_new_tokens: int = REVIEW_MAX_NEW_TOKENS) -> list[Finding]:
        """Ask the model about clauses in the review prompt (:func:`review.review_messages`, the adapter's training
        format). Without ``classify``: the first ``explain`` rule-flagged clauses, most severe first. With it: the
        flagged clauses, then the unflagged numbered ones in document order, ``max_reviews`` in all; categories the
        rules did not give become findings with ``source="llm"``. Every answered clause records
        ``llm_category``; with ``attach`` the rule findings on it get the model's explanation (marked when the
        model reads the clause differently)."""
        order = {"high": 0, "medium": 1, "low": 2}
        by_clause: dict[int, list[Finding]] = {}
        for f in sorted(findings, key=lambda f: order[f.severity]):
            if f.clause_index is not None and f.source == "rule":
                by_clause.setdefault(f.clause_index, []).append(f)
        if classify:
            todo = list(by_clause) + [c.index for c in clauses if c.number and c.index not in by_clause]
            todo = todo[:max_reviews]
        else:
            todo = list(by_clause)[:explain]
        cfg = GenerationConfig(max_new_tokens=max_new_tokens, temperature=0.0)
        by_index = {c.index: c for c in clauses}
        out: list[Finding] = []
        for i, idx in enumerate(todo):
            self.progress(stage, f"clause {i + 1}/{len(todo)}", (i + 1) / len(todo))
            clause = by_index[idx]
            system, user = review.review_messages(clause.text)
            gen = self.lm.generate(user, cfg, adapter=self._adapter_name, system=system)
            answer = review.parse_answer(gen.text)
            clause.llm_category = answer.category
            text = _tidy(answer.explanation, gen.finish_reason)
            if attach and idx in by_clause:
                agrees = answer.category is None or answer.category in clause.categories
                for f in by_clause[idx]:
                    f.explanation = text if agrees else f"(model: {answer.category}) {text}"
            cid = answer.category
            if classify and cid in rules.BY_ID and cid not in clause.categories:
                clause.categories.append(cid)
                cat = rules.BY_ID[cid]
                out.append(Finding(category=cid, severity=cat.severity, clause_text=clause.text, page=clause.page,
                                   box=clause.box, clause_index=clause.index, source="llm", explanation=text,
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
    """First paragraph; when the token budget cut it, drop the unfinished last sentence (English or Chinese)."""
    text = text.strip().split("\n\n")[0].strip()
    if finish_reason == "length" and not text.endswith((".", "。")):
        ends = [m.end() for m in re.finditer(r"\.(?=\s)|。", text)]
        if ends:
            text = text[: ends[-1]].strip()
    return text or "(the model gave no explanation)"


def _tristate(value: Any) -> bool | None:
    return None if value is None else bool(value)


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
