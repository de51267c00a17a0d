"""Job artifacts (what a vertical renders beside its JSON) and the static pages mount, over a loopback server."""

from __future__ import annotations

import base64
import io
import json
import time
from typing import Any

import httpx
import numpy as np
import pytest
from pydantic import Field, PrivateAttr

from puyu_apps.pipelines import Pipeline, PipelineResult, register, unregister
from puyu_apps.serve.artifacts import write_artifacts

from .conftest import make_server

NAME = "render_test"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()


class RenderResult(PipelineResult):
    text: str
    page_images: dict[int, str] = Field(default_factory=dict, exclude=True)
    _audio: Any = PrivateAttr(default=None)

    @property
    def reply_audio(self) -> Any:
        return self._audio

    def save(self, path):
        from puyu_apps.service.audio import write_wav

        return write_wav(path, self._audio)

    def to_html(self) -> str:
        return f"<p>{self.text}</p><p>{len(self.page_images)} page(s)</p>"


class RenderPipeline(Pipeline):
    name = NAME
    result_type = RenderResult
    adapter_subdir = None
    accepted_suffixes = (".txt",)

    def preprocess(self, inputs: Any, **params: Any) -> Any:
        return str(inputs)

    def _forward(self, prepared: Any) -> Any:
        return prepared

    def warm_up(self) -> None:  # no model needed
        self._warm = True

    def postprocess(self, outputs: Any) -> RenderResult:
        r = RenderResult(vertical=NAME, text=outputs, page_images={1: PNG, 2: PNG})
        r._audio = np.zeros(1600, np.float32)
        return r


@pytest.fixture(scope="module")
def render_server(tmp_path_factory):
    register(NAME, RenderPipeline, replace=True)
    pages = tmp_path_factory.mktemp("pages")
    (pages / "index.html").write_text("<h1>apps</h1>")
    srv = make_server(tmp_path_factory, pages_dir=str(pages))
    yield srv
    srv.stop()
    unregister(NAME)


def _finish(client: httpx.Client, job_id: str) -> dict:
    for _ in range(200):
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError("the job did not finish")


def test_artifacts_of_a_job_are_listed_and_served(render_server):
    with httpx.Client(base_url=render_server.url, timeout=30) as c:
        job = c.post("/v1/jobs", data={"vertical": NAME, "text": "call Mr. John Smith on 13812345678"}).json()
        assert _finish(c, job["id"])["status"] == "done"
        listing = c.get(f"/v1/jobs/{job['id']}/artifacts").json()["artifacts"]
        names = {a["name"]: a for a in listing}
        assert set(names) == {"report.html", "page-1.png", "page-2.png", "reply.wav"}
        assert names["reply.wav"]["media_type"] == "audio/wav" and names["page-1.png"]["media_type"] == "image/png"
        html = c.get(names["report.html"]["url"])
        assert html.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in html.headers["content-security-policy"]
        assert "2 page(s)" in html.text
        assert "13812345678" not in html.text  # rendered from the masked result, like the JSON
        assert c.get(names["page-2.png"]["url"]).content == base64.b64decode(PNG)
        wav = c.get(names["reply.wav"]["url"]).content
        assert wav[:4] == b"RIFF"
        import soundfile as sf

        assert sf.info(io.BytesIO(wav)).frames == 1600
        for bad in ("../serve.sqlite3", ".partial-report.html", "nope.png", "%2e%2e%2fserve.sqlite3"):
            assert c.get(f"/v1/jobs/{job['id']}/artifacts/{bad}").status_code == 404
        assert c.get("/v1/jobs/unknown/artifacts").status_code == 404
        assert c.get("/v1/jobs/unknown/artifacts/report.html").status_code == 404


def test_a_failing_rendering_does_not_fail_the_job(tmp_path, caplog):
    class Broken(RenderResult):
        def to_html(self) -> str:
            raise RuntimeError("no html today")

    r = Broken(vertical=NAME, text="x", page_images={3: PNG})
    written = write_artifacts(r, json.loads(r.model_dump_json()), tmp_path)
    assert written == ["page-3.png"]  # no audio: reply_audio is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page-3.png"]
    assert "no html today" in caplog.text


def test_pages_mount_and_server_info(render_server):
    with httpx.Client(base_url=render_server.url, timeout=30) as c:
        assert c.get("/apps/").text == "<h1>apps</h1>"
        assert c.get("/apps", follow_redirects=False).status_code in (301, 302, 307)
        info = c.get("/apps/server.json").json()
        assert info["verticals"][NAME]["suffixes"] == [".txt"]
        assert info["max_upload_mb"] == 50.0 and info["keys_required"] is False
        assert c.get("/apps/missing.html").status_code == 404
        assert c.get("/apps/../serve.sqlite3").status_code == 404
    with pytest.raises(ValueError, match="pages_dir"):
        from puyu_apps.serve import ServeConfig, create_app

        create_app(ServeConfig(pages_dir="/no/such/folder", data_dir=str(render_server.config.data_dir)),
                   start_workers=False)


def test_vertical_options_reach_the_pipelines(tmp_path):
    from puyu_apps.serve import ServeConfig, create_app

    app = create_app(ServeConfig(data_dir=str(tmp_path), vertical_options={"medical": {"max_new_tokens": 40}}),
                     start_workers=False)
    pipe, _ = app.state.puyu.runtime.pipeline("medical")
    assert pipe.max_new_tokens == 40 and not pipe._warm  # constructed, nothing loaded
    with pytest.raises(ValueError, match=r"vertical_options\['medical'\].*bogus"):
        create_app(ServeConfig(data_dir=str(tmp_path), vertical_options={"medical": {"bogus": 1}}),
                   start_workers=False)
    with pytest.raises(ValueError, match="model/device/dtype"):
        ServeConfig(vertical_options={"medical": {"model": "other"}})


def test_serve_cli_refuses_bad_settings_with_a_message(tmp_path, capsys):
    from puyu_apps.cli import main

    assert main(["serve", "--data-dir", str(tmp_path), "--vertical-options", "{x"]) == 2
    assert main(["serve", "--data-dir", str(tmp_path), "--vertical-options", '{"legal": {"bogus": 1}}']) == 2
    assert main(["serve", "--data-dir", str(tmp_path), "--pages", str(tmp_path / "none")]) == 2
    err = capsys.readouterr()
    text = err.out + err.err
    assert "not valid JSON" in text and "bogus" in text and "is not a folder" in text
