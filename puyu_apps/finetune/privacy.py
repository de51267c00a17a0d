"""Privacy accounting for DP-SGD: Renyi DP of the subsampled Gaussian mechanism, converted to (epsilon, delta).

Integer-order bound for Poisson subsampling with rate q and noise multiplier sigma (Mironov, Talwar & Zhang,
2019): A_a = sum_k C(a,k) (1-q)^(a-k) q^k exp((k^2 - k) / (2 sigma^2)); RDP(a) = log(A_a) / (a - 1) per step.
"""

from __future__ import annotations

import math

ORDERS = tuple(range(2, 129))


def _log_add(a: float, b: float) -> float:
    hi, lo = max(a, b), min(a, b)
    return hi + math.log1p(math.exp(lo - hi)) if lo != -math.inf else hi


def rdp_subsampled_gaussian(q: float, sigma: float, order: int) -> float:
    if q == 0:
        return 0.0
    if q == 1.0:
        return order / (2 * sigma**2)
    log_a = -math.inf
    for k in range(order + 1):
        term = (math.log(math.comb(order, k)) + (order - k) * math.log1p(-q) + k * math.log(q)
                + (k * k - k) / (2 * sigma**2))
        log_a = _log_add(log_a, term)
    return log_a / (order - 1)


def epsilon_spent(q: float, sigma: float, steps: int, delta: float) -> float:
    """(epsilon, delta)-DP guarantee after ``steps`` steps of sampling rate ``q`` and noise ``sigma``."""
    if steps == 0:
        return 0.0
    best = math.inf
    for a in ORDERS:
        eps = steps * rdp_subsampled_gaussian(q, sigma, a) + math.log(1 / delta) / (a - 1)
        best = min(best, eps)
    return best
