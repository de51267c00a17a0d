"""A real server on a free loopback port, with the tiny random model and the test vertical registered."""

from __future__ import annotations

import httpx
import pytest

from puyu_apps.pipelines import register, unregister

from .verticals_for_tests import NAME, EchoPipeline

TINY = "tiny-random-llama"


@pytest.fixture(scope="module")
def echo_vertical():
    register(NAME, EchoPipeline, replace=True)
    yield NAME
    unregister(NAME)


def make_server(tmp_path_factory, **overrides):
    from puyu_apps.serve import ServeConfig, ServerThread

    cfg = dict(model=TINY, data_dir=str(tmp_path_factory.mktemp("serve")), max_tokens_limit=64,
               default_max_tokens=8, workers=1, max_queue=4, require_api_key=False)
    cfg.update(overrides)
    return ServerThread(ServeConfig(**cfg)).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory, echo_vertical):
    srv = make_server(tmp_path_factory)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c
