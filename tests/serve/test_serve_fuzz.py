"""Hypothesis fuzz of the endpoints on the real server: whatever is sent, the answer is never a 500."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .verticals_for_tests import NAME

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
messages = st.lists(st.fixed_dictionaries({
    "role": st.sampled_from(["user", "system", "assistant", "tool", ""]),
    "content": st.one_of(st.text(max_size=60), st.integers(), st.none()),
}), max_size=3)
chat_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"messages": messages}, optional={
        "model": st.sampled_from(["tiny-random-llama", "default", "chat", NAME, "nope", ""]) | st.text(max_size=10),
        "max_tokens": st.integers(-5, 200) | st.none(),
        "temperature": st.floats(-1, 3, allow_nan=False),
        "top_p": st.floats(-0.5, 1.5, allow_nan=False),
        "stop": st.none() | st.text(max_size=5) | st.lists(st.text(max_size=5), max_size=3),
        "seed": st.integers(-5, 2**33),
        "stream": st.booleans(),
        "user": st.text(max_size=10),
        "stream_options": json_values,
    }),
)


def _ok(r):
    assert r.status_code < 500, (r.status_code, r.text[:500])


@SETTINGS
@given(body=chat_bodies)
def test_fuzz_chat(client, body):
    if isinstance(body, dict) and body.get("stream") is True:
        with client.stream("POST", "/v1/chat/completions", json=body) as r:
            _ok(r)
            r.read()
            if r.status_code == 200:
                assert r.text.rstrip().endswith("data: [DONE]")
        return
    r = client.post("/v1/chat/completions", json=body)
    _ok(r)
    r.json()


@SETTINGS
@given(raw=st.binary(max_size=200), ctype=st.sampled_from(["application/json", "text/plain", "multipart/form-data"]))
def test_fuzz_raw_bytes(client, raw, ctype):
    for path in ("/v1/chat/completions", f"/v1/verticals/{NAME}", "/v1/jobs"):
        _ok(client.post(path, content=raw, headers={"content-type": ctype}))


@SETTINGS
@given(text=st.none() | st.text(max_size=80), params=st.none() | st.text(max_size=30) | json_values.map(json.dumps),
       filename=st.none() | st.text(max_size=20), data=st.binary(max_size=300),
       vertical=st.sampled_from([NAME, "chat", "nope"]) | st.text(max_size=12))
def test_fuzz_verticals_and_jobs(client, text, params, filename, data, vertical):
    form = {k: v for k, v in {"text": text, "params": params}.items() if v is not None}
    files = {"file": (filename, data, "application/octet-stream")} if filename is not None else None
    _ok(client.post(f"/v1/verticals/{NAME}", data=form, files=files))
    r = client.post("/v1/jobs", data={**form, "vertical": vertical}, files=files)
    _ok(r)
    if r.status_code == 202:
        jid = r.json()["id"]
        _ok(client.get(f"/v1/jobs/{jid}"))
        _ok(client.get(f"/v1/jobs/{jid}/result"))


@SETTINGS
@given(job_id=st.text(max_size=40))
def test_fuzz_job_ids(client, job_id):
    from urllib.parse import quote

    _ok(client.get(f"/v1/jobs/{quote(job_id, safe='')}"))
    _ok(client.get(f"/v1/jobs/{quote(job_id, safe='')}/result"))
