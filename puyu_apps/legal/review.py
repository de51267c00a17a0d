"""The one-clause review the legal adapter is trained on: the prompt (built here for both the pipeline and the
training-data generator, so they can never drift apart), the fixed answer format, and its parser.

The answer is two lines: a fixed first line, then one sentence in the clause's language::

    Category: payment_terms. Risk: medium.
    Client must pay USD 12,000 within 30 days; late payments bear 1.5% per month.

    Category: penalty. Risk: high.
    违约方须付固定违约金¥20,000，请核对是否相称。

The parser also reads the first line in Chinese (``类别：penalty；风险：高。``) and category labels instead of keys.

The category is a key of :data:`puyu_apps.legal.rules.CATEGORIES` or ``none`` (a routine, low-risk clause); the
risk level is the category's severity in the rule layer (``low`` for ``none``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from . import rules
from .structure import normalise

NONE = "none"
KEYS: tuple[str, ...] = tuple(c.id for c in rules.CATEGORIES) + (NONE,)
RISKS = ("high", "medium", "low")
ZH_RISK = {"high": "高", "medium": "中", "low": "低"}
ZH_LABELS = {
    "limitation_of_liability": "责任限制", "indemnification": "赔偿", "auto_renewal": "自动续期",
    "termination_for_convenience": "任意解除", "non_compete": "竞业限制", "exclusivity": "独家",
    "governing_law": "法律适用与管辖", "penalty": "违约金", "confidentiality": "保密", "assignment": "转让",
    "payment_terms": "付款条款", NONE: "无",
}
#: inference truncates longer clauses (the training clauses are far shorter)
MAX_CLAUSE_CHARS = {"en": 700, "zh": 350}

SYSTEM = "You are a careful contract lawyer. Answer briefly in the fixed format."
USER = ('Contract clause:\n"{clause}"\n\nCategories: ' + ", ".join(KEYS) + ".\n"
        'Answer "Category: <category>. Risk: <high|medium|low>." then one sentence on the risk, in the language '
        "of the clause.")


def clause_lang(text: str) -> str:
    """'zh' when the clause is mostly Chinese, else 'en'."""
    cjk = sum("\u4e00" <= ch <= "\u9fff" for ch in text)
    latin = sum(ch.isascii() and ch.isalpha() for ch in text)
    return "zh" if cjk and cjk >= latin / 4 else "en"


def review_messages(clause: str) -> tuple[str, str]:
    """``(system, user)`` for one clause: exactly what the pipeline sends and what the adapter is trained on.
    One English prompt for both languages (Chinese instructions cost SmolLM2's tokenizer about twice as many
    tokens); the answer's explanation is in the clause's language."""
    clause = " ".join(clause.split())
    return SYSTEM, USER.format(clause=clause[: MAX_CLAUSE_CHARS[clause_lang(clause)]])


def format_answer(category: str, explanation: str) -> str:
    """The target answer: the fixed first line (the same in both languages), then the explanation."""
    return f"Category: {category}. Risk: {default_risk(category)}.\n{explanation}"


def default_risk(category: str) -> str:
    cat = rules.BY_ID.get(category)
    return cat.severity if cat else "low"


@dataclass
class Answer:
    category: str | None       # a key of KEYS, or None when no category could be read
    risk: str | None           # high | medium | low, or None
    explanation: str
    format_ok: bool            # the first line is exactly the fixed format, with a known key and level


_FIRST = re.compile(
    r"^\s*(?:category|类别|类型)\s*[:：]\s*(?P<cat>[^.;。；\n]*?)\s*[.;。；,，]\s*"
    r"(?:risk(?:\s+level)?|风险(?:等级)?)\s*[:：]\s*(?P<risk>[a-z]+|[高中低])\s*[.。;；]?\s*", re.I)
_RISK_ANY = re.compile(r"(?:risk(?:\s+level)?|风险(?:等级)?)\s*[:：]\s*(high|medium|low|[高中低])", re.I)
_RISK_NAMES = {"high": "high", "medium": "medium", "med": "medium", "moderate": "medium", "low": "low",
               "高": "high", "中": "medium", "低": "low"}


def category_key(name: str) -> str | None:
    """A category key from a key, an English label or a Chinese label; None when unknown."""
    s = name.strip().strip("\"'“”<>()（）").strip()
    low = s.lower().replace("-", "_").replace(" ", "_")
    if low in KEYS:
        return low
    if low in ("low_risk", "no_risk", "n/a", "na") or s in ("无", "无风险", "一般条款"):
        return NONE
    for key, label in ZH_LABELS.items():
        if s == label:
            return key
    found = rules.parse_categories(s)
    return found[0] if len(found) == 1 else None


def parse_answer(text: str) -> Answer:
    """Read a model's answer in either language. Lenient: a category named alone on the first line is still
    read (``format_ok`` is then False), and the whole text becomes the explanation."""
    text = text.strip()
    m = _FIRST.match(text)
    if m:
        cat = category_key(m.group("cat"))
        risk = _RISK_NAMES.get(m.group("risk").lower())
        expl = text[m.end():].strip().split("\n\n")[0].strip()
        expl = normalise(expl)
        ok = cat is not None and risk is not None and bool(expl) and "\n" in text[: m.end() + 1]
        return Answer(cat, risk, expl, ok)
    first = text.split("\n", 1)[0]
    cat = category_key(first.strip().rstrip(".。"))
    if cat is None:  # exactly one category named on the first line
        found = {k for k in KEYS[:-1] if re.search(rf"\b{k}\b", first.lower())} | set(rules.parse_categories(first))
        cat = found.pop() if len(found) == 1 else None
    rm = _RISK_ANY.search(text)
    return Answer(cat, _RISK_NAMES.get(rm.group(1).lower()) if rm else None, text.split("\n\n")[0].strip(), False)


def _flat(text: str) -> str:
    return "".join(text.lower().split())


def score(example: Any, generated: str) -> dict[str, Any]:
    """The legal adapter's task scorer for ``puyu eval`` (:data:`puyu_apps.finetune.evaluate.Scorer`).

    ``category_accuracy``, ``risk_level_accuracy`` and ``format_ok`` (the fixed first line with a known key and
    level, then an explanation) are 0/1 per example; ``values_quoted`` is the share of the case's key values
    (amounts, durations, rates) that the explanation quotes, for examples that have any; the ``gold:category`` /
    ``pred:category`` pair becomes ``category_macro_f1``. The truth comes from ``example.meta`` when present,
    else from parsing the reference output."""
    meta = getattr(example, "meta", None) or {}
    ref = parse_answer(getattr(example, "output", "") or "")
    gold_cat = meta.get("category") or ref.category or "unknown"
    gold_risk = meta.get("risk") or ref.risk
    ans = parse_answer(generated)
    pred = ans.category or "unparsed"
    out: dict[str, Any] = {"category_accuracy": float(pred == gold_cat),
                           "risk_level_accuracy": float(ans.risk is not None and ans.risk == gold_risk),
                           "format_ok": float(ans.format_ok), "gold:category": gold_cat, "pred:category": pred}
    values = [str(v) for v in (meta.get("values") or {}).values()]
    if values:
        text = _flat(ans.explanation)
        out["values_quoted"] = sum(_flat(v) in text for v in values) / len(values)
    return out
