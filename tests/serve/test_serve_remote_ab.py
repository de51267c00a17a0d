"""Scale-out: the OpenAI-compatible client against a real server on loopback, a server that generates on a
remote engine, and A/B routing between two adapters with per-arm metrics."""

from __future__ import annotations

import httpx
import pytest

from puyu_apps.core import shared_model
from puyu_apps.errors import AdapterError, ModelLoadError
from puyu_apps.serve import ABTest, RemoteLanguageModel
from puyu_apps.serve.server import free_port

from .conftest import TINY, make_server
from .verticals_for_tests import NAME

MSG = [{"role": "user", "content": "Describe a chest CT"}]


def test_remote_generate_and_stream_match_local(server):
    remote = RemoteLanguageModel(server.url, model=TINY)
    local = shared_model(TINY).generate(MSG, max_new_tokens=10)
    res = remote.generate(MSG, max_new_tokens=10)
    assert res.text == local.text and res.backend == "openai-remote"
    assert res.completion_tokens == local.completion_tokens and res.prompt_tokens == local.prompt_tokens
    assert res.finish_reason == local.finish_reason
    ts = remote.stream("Hello there", max_new_tokens=6, system="Be brief.")
    pieces = list(ts)
    expected = shared_model(TINY).generate([{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": "Hello there"}], max_new_tokens=6)
    assert "".join(pieces) == ts.result.text == expected.text
    assert ts.result.completion_tokens == expected.completion_tokens
    info = remote.info()
    assert info.backend == "openai-remote" and info.source == server.url + "/v1" and info.model == TINY
    with pytest.raises(AdapterError, match="not served"):
        remote.generate("hi", adapter="medical")
    remote.close()


def test_remote_errors():
    with pytest.raises(ValueError, match="base_url"):
        RemoteLanguageModel("ftp://x", model="m")
    dead = RemoteLanguageModel(f"http://127.0.0.1:{free_port()}", model="m", timeout_s=2)
    with pytest.raises(ModelLoadError, match="cannot reach"):
        dead.generate("hi")


def test_server_on_a_remote_engine(server, tmp_path_factory, echo_vertical):
    """A front server with backend_url runs chat and the pipelines on the engine behind it."""
    front = make_server(tmp_path_factory, backend_url=server.url)
    try:
        with httpx.Client(base_url=front.url, timeout=60) as c:
            r = c.post("/v1/chat/completions", json={"model": TINY, "messages": MSG, "max_tokens": 10})
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"] == shared_model(TINY).generate(
                MSG, max_new_tokens=10).text
            assert c.get("/healthz").json()["backend"] == server.url
            r = c.post("/v1/verticals/chat", data={"text": "remote pipeline", "params": '{"max_new_tokens": 4}'})
            assert r.status_code == 200, r.text
            assert r.json()["result"]["engine"]["backend"] == "openai-remote"
    finally:
        front.stop()


def test_ab_routing_with_per_arm_metrics(tmp_path_factory, echo_vertical, adapter_dirs):
    ab = ABTest(NAME, str(adapter_dirs["a"]), str(adapter_dirs["b"]), weight_b=0.5)
    srv = make_server(tmp_path_factory, ab_tests=[ab], cache_size=0)
    try:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            by_arm: dict[str, set[str]] = {"a": set(), "b": set()}
            users = [f"user{i}" for i in range(16)]
            for u in users:
                r = c.post("/v1/chat/completions", json={"model": NAME, "messages": MSG, "max_tokens": 6, "user": u})
                assert r.status_code == 200, r.text
            metrics = c.get("/metrics").text
            n_a = _count(metrics, f'{NAME}:a')
            n_b = _count(metrics, f'{NAME}:b')
            assert n_a >= 1 and n_b >= 1 and n_a + n_b == len(users)
            # sticky: a user always lands on the same arm; the arms answer differently
            lm = shared_model(TINY)
            assert {f"ab:{NAME}:a", f"ab:{NAME}:b"} <= set(lm.adapters.names)
            for arm in ("a", "b"):
                by_arm[arm].add(lm.generate(MSG, max_new_tokens=6, adapter=f"ab:{NAME}:{arm}").text)
            assert by_arm["a"] != by_arm["b"]
            before = _count(c.get("/metrics").text, f"{NAME}:a")
            for _ in range(3):
                c.post("/v1/chat/completions", json={"model": NAME, "messages": MSG, "max_tokens": 6,
                                                     "user": users[0]})
            after_a = _count(c.get("/metrics").text, f"{NAME}:a")
            assert after_a - before in (0, 3)
            assert f'puyu_ttft_seconds_count{{adapter="{NAME}:a"' in metrics or \
                f'puyu_ttft_seconds_count{{adapter="{NAME}:b"' in metrics
    finally:
        srv.stop()


def _count(metrics: str, adapter: str) -> int:
    total = 0
    for line in metrics.splitlines():
        if line.startswith("puyu_requests_total{") and f'adapter="{adapter}"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total
