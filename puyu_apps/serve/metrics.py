"""Prometheus metrics, one registry per app (several apps in one process never collide), plus a rolling window
of latencies for the JSON ``/v1/stats`` (P50/P95/P99 without a Prometheus server)."""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LAT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120)
TPS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)


def quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    idx = min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))
    return s[idx]


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("puyu_requests", "HTTP requests by route, vertical, adapter and status", 
                                ["route", "vertical", "adapter", "status"], registry=r)
        self.latency = Histogram("puyu_request_latency_seconds", "End-to-end latency of answered requests",
                                 ["route", "vertical", "adapter"], buckets=LAT_BUCKETS, registry=r)
        self.ttft = Histogram("puyu_ttft_seconds", "Time to first token (request arrival to first text)",
                              ["vertical", "adapter"], buckets=LAT_BUCKETS, registry=r)
        self.tokens_per_s = Histogram("puyu_tokens_per_second", "Decode throughput per request",
                                      ["vertical", "adapter"], buckets=TPS_BUCKETS, registry=r)
        self.tokens = Counter("puyu_generated_tokens", "Generated tokens", ["vertical", "adapter"], registry=r)
        self.repetition = Histogram("puyu_repetition_rate", "Share of repeated 4-grams in an answer",
                                    ["vertical", "adapter"], buckets=(0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1),
                                    registry=r)
        self.queue_depth = Gauge("puyu_queue_depth", "Admitted requests waiting for a worker", registry=r)
        self.inflight = Gauge("puyu_inflight_requests", "Admitted requests (running + waiting)", registry=r)
        self.jobs = Gauge("puyu_jobs", "Jobs by status", ["status"], registry=r)
        self.rejections = Counter("puyu_rejections", "Requests refused before running", ["reason"], registry=r)
        self.blocks = Counter("puyu_safety_blocks", "Safety blocks", ["vertical", "tier", "category"], registry=r)
        self.cache = Counter("puyu_cache_lookups", "Response cache lookups", ["result"], registry=r)
        self._window: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=10000))
        self._ttfts: deque[float] = deque(maxlen=10000)
        self._lock = threading.Lock()

    def observe(self, route: str, vertical: str, adapter: str, status: int, seconds: float | None) -> None:
        self.requests.labels(route, vertical, adapter, str(status)).inc()
        if seconds is not None and status < 400:
            self.latency.labels(route, vertical, adapter).observe(seconds)
            with self._lock:
                self._window[route].append(seconds)

    def observe_generation(self, vertical: str, adapter: str, ttft: float | None, tps: float, n_tokens: int,
                           repetition: float) -> None:
        if ttft is not None:
            self.ttft.labels(vertical, adapter).observe(ttft)
            with self._lock:
                self._ttfts.append(ttft)
        if tps > 0:
            self.tokens_per_s.labels(vertical, adapter).observe(tps)
        self.tokens.labels(vertical, adapter).inc(n_tokens)
        self.repetition.labels(vertical, adapter).observe(repetition)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {}
            for route, values in self._window.items():
                v = list(values)
                out[route] = {"n": len(v), "p50_s": quantile(v, 0.5), "p95_s": quantile(v, 0.95),
                              "p99_s": quantile(v, 0.99)}
            t = list(self._ttfts)
        return {"latency": out, "ttft": {"n": len(t), "p50_s": quantile(t, 0.5), "p99_s": quantile(t, 0.99)}}

    def render(self) -> bytes:
        return generate_latest(self.registry)
