"""Load test of the HTTP service on loopback at 4x the capacity of its queue.

Compares, in one run: a bounded queue (fast 503 + degraded answer when full) against an unbounded one (every
request waits), and cache hits against misses. Checks that nothing crashes and no request or job is lost; prints
P50/P99 of accepted requests, the slowest rejection, and the ratios.

    .venv/bin/python benchmarks/serve_load.py [--model tiny-random-llama] [--queue 4] [--tokens 32]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from puyu_apps.serve import ServeConfig, ServerThread
from puyu_apps.serve.metrics import quantile


def burst(url: str, n: int, tokens: int, tag: str) -> list[tuple[int, float]]:
    def one(i: int) -> tuple[int, float]:
        body = {"model": "default", "max_tokens": tokens,
                "messages": [{"role": "user", "content": f"{tag} request {i}: describe a chest CT scan"}]}
        t = time.perf_counter()
        try:
            with httpx.Client(timeout=600) as c:
                code = c.post(url + "/v1/chat/completions", json=body).status_code
        except httpx.HTTPError:
            code = -1
        return code, time.perf_counter() - t

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def summarise(name: str, results: list[tuple[int, float]]) -> dict:
    ok = [t for c, t in results if c == 200]
    busy = [t for c, t in results if c == 503]
    lost = [c for c, _ in results if c not in (200, 503)]
    row = {"scenario": name, "sent": len(results), "ok": len(ok), "rejected_503": len(busy), "lost": len(lost),
           "p50_ok_s": round(quantile(ok, 0.5), 3), "p99_ok_s": round(quantile(ok, 0.99), 3),
           "max_reject_s": round(max(busy), 3) if busy else None}
    print(json.dumps(row))
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny-random-llama")
    ap.add_argument("--queue", type=int, default=4, help="max_queue of the bounded server (workers: 1)")
    ap.add_argument("--tokens", type=int, default=32)
    args = ap.parse_args()
    capacity = 1 + args.queue
    n = 4 * capacity
    data = tempfile.mkdtemp(prefix="puyu-load-")
    rows = {}
    for name, max_queue in (("bounded", args.queue), ("unbounded", n)):
        cfg = ServeConfig(model=args.model, data_dir=f"{data}/{name}", workers=1, max_queue=max_queue,
                          cache_size=0, max_tokens_limit=max(args.tokens, 1), default_max_tokens=args.tokens)
        with ServerThread(cfg) as srv:
            burst(srv.url, 1, args.tokens, "warm-up")
            rows[name] = summarise(f"{name} (capacity {1 + max_queue}, {n} concurrent)",
                                   burst(srv.url, n, args.tokens, name))
            health = httpx.get(srv.url + "/healthz").json()
            assert health["status"] == "ok" and health["inflight"] == 0, health
            # jobs at 4x the queue: every accepted job finishes
            with httpx.Client(base_url=srv.url, timeout=60) as c:
                ids = [c.post("/v1/jobs", data={"vertical": "chat", "text": f"job {i}",
                                                "params": json.dumps({"max_new_tokens": 4})}).json()["id"]
                       for i in range(n)]
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline:
                    states = [c.get(f"/v1/jobs/{j}").json()["status"] for j in ids]
                    if all(s in ("done", "failed") for s in states):
                        break
                    time.sleep(0.2)
                print(json.dumps({"scenario": f"{name} jobs", "submitted": n, "done": states.count("done"),
                                  "lost": n - states.count("done")}))
    cfg = ServeConfig(model=args.model, data_dir=f"{data}/cache", default_max_tokens=args.tokens,
                      max_tokens_limit=max(args.tokens, 1))
    with ServerThread(cfg) as srv, httpx.Client(base_url=srv.url, timeout=600) as c:
        body = {"model": "default", "max_tokens": args.tokens, "messages": [{"role": "user", "content": "cache me"}]}
        t = time.perf_counter(); c.post("/v1/chat/completions", json=body); miss = time.perf_counter() - t
        hits = []
        for _ in range(20):
            t = time.perf_counter(); r = c.post("/v1/chat/completions", json=body); hits.append(time.perf_counter() - t)
            assert r.json()["cached"]
    b, u = rows["bounded"], rows["unbounded"]
    print(json.dumps({"p99_accepted_unbounded_over_bounded": round(u["p99_ok_s"] / max(b["p99_ok_s"], 1e-9), 2),
                      "slowest_rejection_over_p50_accepted": round((b["max_reject_s"] or 0) / max(b["p50_ok_s"], 1e-9), 3),
                      "cache_miss_s": round(miss, 4), "cache_hit_p50_s": round(quantile(hits, 0.5), 4),
                      "miss_over_hit": round(miss / max(quantile(hits, 0.5), 1e-9), 1)}))


if __name__ == "__main__":
    main()
