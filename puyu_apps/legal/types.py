"""Typed, JSON-serialisable pieces of a contract review.

Boxes are ``(x0, y0, x1, y1)`` fractions of the page width/height, origin top-left, so they hold for any
rendering resolution (the text layer's points, a 200 dpi scan, the report's thumbnails).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

Box = tuple[float, float, float, float]
Severity = Literal["high", "medium", "low"]


@dataclass
class Word:
    """One word of a page (text layer or OCR), box in page fractions."""

    text: str
    box: Box
    conf: float = 100.0          # OCR confidence 0-100; 100 for the text layer
    line: int = 0                # line number on the page (reading order)


@dataclass
class Line:
    text: str
    box: Box
    page: int                    # 1-based
    words: list[Word] = field(default_factory=list)


class PageInfo(BaseModel):
    page: int = Field(description="1-based page number")
    source: Literal["text", "ocr", "empty"]
    lang: str = ""
    skew_deg: float = 0.0
    n_chars: int = 0
    ocr_conf: float | None = None
    width: float = Field(0.0, description="page width in points (PDF) or pixels (image)")
    height: float = 0.0


class Clause(BaseModel):
    index: int
    number: str = Field("", description="the clause's own numbering: '3', '3.1', '第三条', '(a)'")
    heading: str = ""
    text: str
    page: int
    box: Box
    categories: list[str] = []
    llm_category: str | None = Field(None, description="the category the model gave this clause (a category key or "
                                     "'none'); None when the model was not asked or its answer was unreadable")


class Party(BaseModel):
    role: str = Field(description="e.g. 'Provider', 'Client', '甲方'")
    name: str


class Amount(BaseModel):
    text: str
    value: float
    currency: str
    page: int
    words_value: float | None = Field(None, description="the amount written in words next to it, if any")


class SignatureMark(BaseModel):
    page: int
    box: Box
    kind: Literal["signature", "seal"]
    confidence: float


class SignatureBlock(BaseModel):
    page: int
    label: str
    party: str = ""
    box: Box
    signed: bool
    marks: list[int] = Field([], description="indices into ContractReview.signatures")


class Finding(BaseModel):
    category: str
    severity: Severity
    clause_text: str
    page: int
    box: Box
    reason: str = Field(description="deterministic reason from the rule layer")
    explanation: str = Field("", description="the LLM's explanation (empty when it was not asked)")
    clause_index: int | None = None
    source: Literal["rule", "check", "llm"] = Field("rule", description="rule: a category pattern; check: a rule "
                                                  "check; llm: a category only the model gave (the legal adapter "
                                                  "or llm_classify)")
