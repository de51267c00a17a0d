"""Tier 2: a small multinomial naive-Bayes classifier over character 1-3-grams of the compact text.

It is trained on a generated set (see :mod:`.train_data`) in well under a second and shipped as
``classifier.json`` (a few hundred KB). Rebuild it with ``python -m puyu_apps.safety.classifier``.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .normalize import compact

WEIGHTS = Path(__file__).with_name("classifier.json")


def features(text: str) -> Counter[str]:
    t = compact(text)
    grams: Counter[str] = Counter()
    for n in (1, 2, 3):
        for i in range(len(t) - n + 1):
            grams[t[i:i + n]] += 1
    return grams


@dataclass
class NaiveBayes:
    """P(unsafe | text) from per-class log-likelihoods of character n-grams (Laplace smoothing)."""

    log_prior: dict[str, float] = field(default_factory=dict)
    log_lik: dict[str, dict[str, float]] = field(default_factory=dict)
    log_unseen: dict[str, float] = field(default_factory=dict)

    @classmethod
    def train(cls, texts: list[str], labels: list[int], min_count: int = 2, alpha: float = 0.5) -> "NaiveBayes":
        counts = {"0": Counter(), "1": Counter()}
        for text, y in zip(texts, labels):
            counts[str(y)].update(features(text))
        total = counts["0"] + counts["1"]
        vocab = {g for g, c in total.items() if c >= min_count}
        model = cls()
        n = len(labels)
        for c in ("0", "1"):
            n_c = sum(1 for y in labels if str(y) == c)
            model.log_prior[c] = math.log(n_c / n)
            denom = sum(counts[c][g] for g in vocab) + alpha * (len(vocab) + 1)
            model.log_lik[c] = {g: round(math.log((counts[c][g] + alpha) / denom), 4) for g in vocab}
            model.log_unseen[c] = math.log(alpha / denom)
        return model

    def predict_proba(self, text: str) -> float:
        """Probability that ``text`` is unsafe."""
        grams = features(text)
        score = {}
        for c in ("0", "1"):
            lik = self.log_lik[c]
            s = self.log_prior[c]
            for g, k in grams.items():
                if g in lik:  # n-grams outside the vocabulary carry no evidence either way
                    s += k * lik[g]
            score[c] = s
        diff = score["0"] - score["1"]
        return 1.0 / (1.0 + math.exp(min(diff, 700.0)))

    def save(self, path: Path = WEIGHTS) -> None:
        data = {"log_prior": self.log_prior, "log_lik": self.log_lik, "log_unseen": self.log_unseen}
        path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")

    @classmethod
    def load(cls, path: Path = WEIGHTS) -> "NaiveBayes":
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(data["log_prior"], data["log_lik"], data["log_unseen"])


@lru_cache(maxsize=1)
def default_classifier() -> NaiveBayes:
    """The shipped classifier (loaded once, on first use)."""
    return NaiveBayes.load(WEIGHTS)


def build(seed: int = 0, holdout: float = 0.2) -> tuple[NaiveBayes, dict[str, float]]:
    """Train on the generated set and report held-out accuracy / recall / false-positive rate."""
    from .train_data import generate

    rows = generate(seed)
    random.Random(seed).shuffle(rows)
    cut = int(len(rows) * (1 - holdout))
    train, test = rows[:cut], rows[cut:]
    model = NaiveBayes.train([t for t, _ in train], [y for _, y in train])
    pred = [(model.predict_proba(t) >= 0.5, y) for t, y in test]
    pos = [p for p, y in pred if y == 1]
    neg = [p for p, y in pred if y == 0]
    report = {"n_train": len(train), "n_test": len(test),
              "accuracy": sum(p == bool(y) for p, y in pred) / len(pred),
              "recall": sum(pos) / max(len(pos), 1), "false_positive_rate": sum(neg) / max(len(neg), 1)}
    final = NaiveBayes.train([t for t, _ in rows], [y for _, y in rows])
    return final, report


if __name__ == "__main__":
    model, report = build()
    model.save()
    print(json.dumps(report, indent=2), f"\nwrote {WEIGHTS} ({WEIGHTS.stat().st_size // 1024} KB)")
