"""The embedded default model served end to end (English, greedy): a sensible answer through the real server."""

from __future__ import annotations

import httpx
import pytest

from .conftest import make_server


@pytest.mark.integration
def test_embedded_model_over_http(tmp_path_factory, echo_vertical):
    from puyu_apps.core import DEFAULT_MODEL

    srv = make_server(tmp_path_factory, model=DEFAULT_MODEL, max_tokens_limit=64, default_max_tokens=24)
    try:
        with httpx.Client(base_url=srv.url, timeout=300) as c:
            r = c.post("/v1/chat/completions", json={"model": "default", "max_tokens": 24, "messages": [
                {"role": "user", "content": "What is the capital of France? Answer in one word."}]})
            assert r.status_code == 200, r.text
            assert "paris" in r.json()["choices"][0]["message"]["content"].lower()
            text = ""
            with c.stream("POST", "/v1/chat/completions", json={"model": "chat", "max_tokens": 24, "stream": True,
                          "messages": [{"role": "user", "content": "Name a primary colour."}]}) as s:
                for line in s.iter_lines():
                    if line.startswith("data: {"):
                        import json

                        chunk = json.loads(line[6:])
                        text += chunk["choices"][0]["delta"].get("content", "") if chunk["choices"] else ""
            assert text.strip()
    finally:
        srv.stop()
