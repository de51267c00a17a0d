"""Tier 2: a small logistic-regression classifier over character 1-3-grams and words.

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

from .normalize import compact, normalize

WEIGHTS = Path(__file__).with_name("classifier.json")
#: texts shorter than this (compact characters) are not classified: too few n-grams to decide on
MIN_CHARS = 8


def features(text: str) -> Counter[str]:
    """Character 1-3-grams of the compact text plus the words of the normalised text."""
    t = compact(text)
    grams: Counter[str] = Counter()
    for n in (1, 2, 3):
        for i in range(len(t) - n + 1):
            grams[t[i:i + n]] += 1
    for word in normalize(text).split():
        grams["w:" + word.strip(".,!?;:'\"")] += 1
    return grams


def _vector(grams: Counter[str], vocab: dict[str, int] | None = None) -> dict[str, float]:
    """log(1 + count) weights, L2-normalised (over the vocabulary when one is given)."""
    vals = {g: math.log1p(c) for g, c in grams.items() if vocab is None or g in vocab}
    norm = math.sqrt(sum(v * v for v in vals.values())) or 1.0
    return {g: v / norm for g, v in vals.items()}


@dataclass
class SafetyClassifier:
    """L2-regularised logistic regression over sparse n-gram features (discriminative, so words shared by
    harmful and harmless requests, "how to", "please", get little weight)."""

    weights: dict[str, float] = field(default_factory=dict)
    bias: float = 0.0

    @classmethod
    def train(cls, texts: list[str], labels: list[int], min_count: int = 2, l2: float = 1e-6) -> "SafetyClassifier":
        import numpy as np
        from scipy.optimize import minimize
        from scipy.sparse import csr_matrix

        feats = [features(t) for t in texts]
        counts: Counter[str] = Counter()
        for f in feats:
            counts.update(f.keys())
        vocab = {g: i for i, g in enumerate(sorted(g for g, c in counts.items() if c >= min_count))}
        rows, cols, vals = [], [], []
        for r, f in enumerate(feats):
            for g, v in _vector(f, vocab).items():
                rows.append(r)
                cols.append(vocab[g])
                vals.append(v)
        X = csr_matrix((vals, (rows, cols)), shape=(len(texts), len(vocab)))
        y = np.asarray(labels, dtype=float)
        pos = y.mean()
        sw = np.where(y == 1, 0.5 / pos, 0.5 / (1 - pos)) / len(y)  # balanced classes

        def loss(theta):
            w, b = theta[:-1], theta[-1]
            z = X @ w + b
            p = 1 / (1 + np.exp(-z))
            eps = 1e-12
            value = -(sw * (y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))).sum() + l2 * (w @ w)
            g = sw * (p - y)
            return value, np.concatenate([X.T @ g + 2 * l2 * w, [g.sum()]])

        theta = minimize(loss, np.zeros(len(vocab) + 1), jac=True, method="L-BFGS-B",
                         options={"maxiter": 500}).x
        inv = {i: g for g, i in vocab.items()}
        weights = {inv[i]: round(float(w), 4) for i, w in enumerate(theta[:-1]) if abs(w) >= 1e-3}
        return cls(weights, float(theta[-1]))

    def predict_proba(self, text: str) -> float:
        """Probability that ``text`` is unsafe."""
        z = self.bias + sum(v * self.weights.get(g, 0.0) for g, v in _vector(features(text)).items())
        return 1.0 / (1.0 + math.exp(-max(min(z, 700.0), -700.0)))

    def save(self, path: Path = WEIGHTS) -> None:
        data = {"model": "logistic", "features": "char 1-3-grams + words", "bias": self.bias, "weights": self.weights}
        path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")

    @classmethod
    def load(cls, path: Path = WEIGHTS) -> "SafetyClassifier":
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(data["weights"], data["bias"])


@lru_cache(maxsize=1)
def default_classifier() -> SafetyClassifier:
    """The shipped classifier (loaded once, on first use)."""
    return SafetyClassifier.load(WEIGHTS)


def build(seed: int = 0, holdout: float = 0.2) -> tuple[SafetyClassifier, dict[str, float]]:
    """Train on the generated set and report held-out accuracy / recall / false-positive rate."""
    from .train_data import generate

    rows = generate(seed)
    random.Random(seed).shuffle(rows)
    cut = int(len(rows) * (1 - holdout))
    train, test = rows[:cut], rows[cut:]
    model = SafetyClassifier.train([t for t, _ in train], [y for _, y in train])
    pred = [(model.predict_proba(t) >= 0.5, y) for t, y in test]
    pos = [p for p, y in pred if y == 1]
    neg = [p for p, y in pred if y == 0]
    report = {"n_train": len(train), "n_test": len(test),
              "accuracy": sum(p == bool(y) for p, y in pred) / len(pred),
              "recall": sum(pos) / max(len(pos), 1), "false_positive_rate": sum(neg) / max(len(neg), 1)}
    final = SafetyClassifier.train([t for t, _ in rows], [y for _, y in rows])
    return final, report


if __name__ == "__main__":
    model, report = build()
    model.save()
    print(json.dumps(report, indent=2), f"\nwrote {WEIGHTS} ({WEIGHTS.stat().st_size // 1024} KB)")
