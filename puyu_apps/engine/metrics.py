"""Per-generation metrics shared by every backend: inter-token latency percentiles and the repetition rate."""

from __future__ import annotations

from typing import Any, Sequence

#: n-gram length of the repetition rate
REPEAT_N = 4


def repetition_rate(ids: Sequence[int], n: int = REPEAT_N) -> float:
    """Share of the output's ``n``-grams that already occurred earlier in the same output (0.0: no loop;
    a model stuck repeating one phrase tends to 1.0). Outputs shorter than ``n + 1`` tokens score 0.0."""
    total = len(ids) - n + 1
    if total <= 1:
        return 0.0
    seen: set[tuple[int, ...]] = set()
    repeats = 0
    for i in range(total):
        gram = tuple(ids[i:i + n])
        if gram in seen:
            repeats += 1
        else:
            seen.add(gram)
    return repeats / total


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default) without numpy."""
    xs = sorted(values)
    if not xs:
        return 0.0
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def generation_metrics(token_times: Sequence[float], ids: Sequence[int], weight_format: str) -> dict[str, Any]:
    """The optional :class:`~puyu_apps.core.types.GenerationResult` fields from per-token arrival times."""
    gaps = [b - a for a, b in zip(token_times, token_times[1:])]
    return {
        "weight_format": weight_format,
        "itl_p50_s": percentile(gaps, 50) if gaps else None,
        "itl_p99_s": percentile(gaps, 99) if gaps else None,
        "repetition_rate": repetition_rate(list(ids)),
    }
