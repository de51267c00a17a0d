"""Service fixtures: calls spoken by the real espeak-ng, a pipeline on the tiny random LLM with a temp SQLite."""

from __future__ import annotations

import subprocess

import pytest

CALL_TEXT = "Hello, my order arrived damaged and I would like a refund please."


def espeak(text: str, path, voice: str = "en-us", speed: int = 150):
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), "--", text], check=True)
    return path


@pytest.fixture(scope="session")
def call_wav(tmp_path_factory):
    return espeak(CALL_TEXT, tmp_path_factory.mktemp("calls") / "call.wav")


@pytest.fixture
def service(tmp_path):
    from puyu_apps.service import CustomerServicePipeline

    pipe = CustomerServicePipeline(model="tiny-random-llama", db_url=f"sqlite:///{tmp_path / 'tickets.db'}",
                                   max_new_tokens=24)
    yield pipe
    pipe.close()
