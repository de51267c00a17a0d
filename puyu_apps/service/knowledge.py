"""The FAQ / knowledge file an integrator replaces, and keyword-overlap retrieval over it.

The file is JSON: ``{"entries": [{"id", "question", "answer", "keywords": [...], "answer_zh"?}, ...]}``. English is matched on
words (stop words dropped, light suffix stripping), Chinese on character bigrams.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidInputError

_STOP = {"a", "an", "the", "i", "my", "me", "you", "your", "is", "are", "was", "it", "to", "of", "and", "or", "in",
         "on", "for", "with", "do", "does", "did", "can", "could", "would", "what", "how", "when", "where", "why",
         "this", "that", "have", "has", "had", "be", "not", "no", "we", "our", "please", "hello", "hi", "there",
         "want", "need", "will", "just", "so", "at", "from", "about", "yet", "still", "am", "get"}


def terms(text: str) -> set[str]:
    low = text.lower()
    words = {_stem(w) for w in re.findall(r"[a-z0-9]+", low) if w not in _STOP and len(w) > 1}
    for run in re.findall(r"[\u4e00-\u9fff]+", low):
        words |= {run[i:i + 2] for i in range(len(run) - 1)} or {run}
    return words


def _stem(w: str) -> str:
    for suf in ("ing", "ed", "es", "s"):
        if len(w) > len(suf) + 2 and w.endswith(suf):
            return w[: -len(suf)]
    return w


@dataclass
class FAQEntry:
    id: str
    question: str
    answer: str
    keywords: list[str] = field(default_factory=list)
    translations: dict[str, str] = field(default_factory=dict)  # language -> answer ("answer_zh" in the file)

    def answer_for(self, language: str) -> str:
        return self.translations.get(language, self.answer)

    def index_terms(self) -> set[str]:
        return terms(" ".join([self.question, " ".join(self.keywords)]))


class KnowledgeBase:
    def __init__(self, entries: list[FAQEntry], source: str = "<memory>") -> None:
        if not entries:
            raise InvalidInputError(f"{source}: the FAQ holds no entries; add at least one question and answer")
        self.entries, self.source = entries, source
        self._index = [e.index_terms() for e in entries]
        self._keywords = [terms(" ".join(e.keywords)) for e in entries]
        self._df: dict[str, int] = {}
        for idx in self._index:
            for t in idx:
                self._df[t] = self._df.get(t, 0) + 1

    @classmethod
    def load(cls, path: str | Path) -> "KnowledgeBase":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInputError(f"{path}: cannot read the FAQ file ({exc}); pass a JSON file with "
                                    f"{{'entries': [{{'id', 'question', 'answer', 'keywords'}}]}}") from exc
        entries = []
        for i, e in enumerate(data.get("entries", []) if isinstance(data, dict) else []):
            if not isinstance(e, dict) or not e.get("question") or not e.get("answer"):
                raise InvalidInputError(f"{path}: entries[{i}] needs non-empty 'question' and 'answer'")
            extra = {k.removeprefix("answer_"): v for k, v in e.items() if k.startswith("answer_") and v}
            entries.append(FAQEntry(str(e.get("id", i)), e["question"], e["answer"], list(e.get("keywords", [])),
                                    extra))
        return cls(entries, str(path))

    def search(self, query: str, k: int = 2) -> list[tuple[FAQEntry, float]]:
        """The ``k`` entries sharing most terms with ``query`` (score = overlap / query terms), best first.

        Equal scores are ranked by how specific the shared terms are (a keyword counts twice, a term found in
        several entries counts less), then by file order."""
        q = terms(query)
        if not q:
            return []
        scored = []
        for i, idx in enumerate(self._index):
            shared = q & idx
            if shared:
                weight = sum((2.0 if t in self._keywords[i] else 1.0) / self._df[t] for t in shared)
                scored.append((len(shared) / len(q), weight, -i))
        scored.sort(reverse=True)
        return [(self.entries[-i], round(s, 3)) for s, _, i in scored[:k]]
