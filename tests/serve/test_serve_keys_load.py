"""API keys (hashed at rest, per-key rate limits), backpressure under 4x the queue capacity, restart mid-job."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from puyu_apps.serve.keys import KeyStore
from puyu_apps.serve.server import free_port

from .conftest import TINY, make_server
from .verticals_for_tests import NAME

ROOT = Path(__file__).resolve().parents[2]


def test_api_keys_and_rate_limits(tmp_path_factory, echo_vertical):
    srv = make_server(tmp_path_factory, require_api_key=None)  # auto: required once a key exists
    try:
        store = KeyStore(srv.config.db_file)
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            assert c.post(f"/v1/verticals/{NAME}", data={"text": "open"}).status_code == 200  # no keys yet
            key = store.create("tests", rate_per_min=3)
            slow = store.create("other", rate_per_min=0)
            r = c.post(f"/v1/verticals/{NAME}", data={"text": "x"})
            assert r.status_code == 401 and "API key" in r.json()["error"]["message"]
            bad = key[:-2] + ("aa" if not key.endswith("aa") else "bb")
            assert c.post(f"/v1/verticals/{NAME}", data={"text": "x"},
                          headers={"Authorization": f"Bearer {bad}"}).status_code == 401
            auth = {"Authorization": f"Bearer {key}"}
            codes = [c.post(f"/v1/verticals/{NAME}", data={"text": f"t{i}"}, headers=auth).status_code
                     for i in range(5)]
            assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
            r = c.post(f"/v1/verticals/{NAME}", data={"text": "t"}, headers=auth)
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
            # another key is not affected; X-API-Key works too
            assert c.post(f"/v1/verticals/{NAME}", data={"text": "y"}, headers={"X-API-Key": slow}).status_code == 200
            # jobs belong to the key that submitted them
            jid = c.post("/v1/jobs", data={"vertical": NAME, "text": "mine"}, headers={"X-API-Key": slow}).json()["id"]
            other = store.create("third", rate_per_min=0)
            assert c.get(f"/v1/jobs/{jid}", headers={"X-API-Key": other}).status_code == 404
            assert c.get(f"/v1/jobs/{jid}", headers={"X-API-Key": slow}).status_code == 200
            assert c.get("/healthz").status_code == 200  # ops endpoints stay open
            store.revoke(key.split("-")[1])
            assert c.post(f"/v1/verticals/{NAME}", data={"text": "z"}, headers=auth).status_code == 401
        raw = srv.config.db_file.read_bytes()
        secret = slow.split("-", 2)[2]
        assert secret.encode() not in raw and slow.encode() not in raw
        with sqlite3.connect(srv.config.db_file) as con:
            hashes = [r[0] for r in con.execute("SELECT hash FROM api_keys")]
        assert all(len(h) == 64 for h in hashes)
    finally:
        srv.stop()


def test_backpressure_at_4x_capacity(tmp_path_factory, echo_vertical):
    """workers=1, max_queue=2: capacity 3; 12 simultaneous requests. No crash, nothing lost, fast clear 503s."""
    srv = make_server(tmp_path_factory, workers=1, max_queue=2, cache_size=0)
    try:
        def call(i):
            t = time.perf_counter()
            with httpx.Client(base_url=srv.url, timeout=60) as c:
                r = c.post(f"/v1/verticals/{NAME}", data={"text": f"req {i}", "params": json.dumps({"sleep": 0.4})})
            return r.status_code, time.perf_counter() - t, r

        with ThreadPoolExecutor(12) as pool:
            results = list(pool.map(call, range(12)))
        ok = [r for r in results if r[0] == 200]
        busy = [r for r in results if r[0] == 503]
        assert len(ok) + len(busy) == 12, [r[0] for r in results]
        assert 1 <= len(ok) <= 6 and len(busy) >= 6
        assert max(t for _, t, _ in busy) < 1.0  # refused at once, not after waiting
        for _, _, r in busy:
            assert r.json()["degraded"] is True and "busy" in r.json()["message"] and r.headers["retry-after"]
        for code, _, r in ok:
            assert r.json()["result"]["text"].startswith("req ")
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            assert c.get("/healthz").json()["inflight"] == 0
            assert 'puyu_rejections_total{reason="queue_full"}' in c.get("/metrics").text
            # jobs under load: every accepted job completes
            ids = [c.post("/v1/jobs", data={"vertical": NAME, "text": f"job {i}"}).json()["id"] for i in range(12)]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                states = [c.get(f"/v1/jobs/{j}").json()["status"] for j in ids]
                if all(s == "done" for s in states):
                    break
                time.sleep(0.1)
            assert all(s == "done" for s in states), states
    finally:
        srv.stop()


def test_restart_mid_job_keeps_the_job(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", f"from tests.serve.verticals_for_tests import serve_main; "
                                 f"serve_main({port}, {str(tmp_path)!r})"]
    url = f"http://127.0.0.1:{port}"

    def start():
        log = open(tmp_path / "server.log", "ab")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    return proc
            except httpx.HTTPError:
                time.sleep(0.1)
        proc.kill()
        raise AssertionError((tmp_path / "server.log").read_text()[-2000:])

    first = start()
    try:
        jid = httpx.post(url + "/v1/jobs", data={"vertical": NAME, "text": "survive",
                                                 "params": json.dumps({"sleep": 2.0})}).json()["id"]
        for _ in range(100):
            if httpx.get(f"{url}/v1/jobs/{jid}").json()["status"] == "running":
                break
            time.sleep(0.05)
        assert httpx.get(f"{url}/v1/jobs/{jid}").json()["status"] == "running"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    second = start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            job = httpx.get(f"{url}/v1/jobs/{jid}").json()
            if job["status"] in ("done", "failed"):
                break
            time.sleep(0.1)
        assert job["status"] == "done" and job["attempts"] == 2, job
        assert httpx.get(f"{url}/v1/jobs/{jid}/result").json()["result"]["text"] == "survive"
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)
    assert "Traceback" not in (tmp_path / "server.log").read_text()
