"""The ten-line API scripts and the subclass-and-register example run as a reader would run them (on the sample
inputs, the tiny random model, in a scratch folder), plus the launcher's command line."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, TINY

EXAMPLES = ROOT / "examples"


def _run(script: str, args: list[str], cwd: Path, monkeypatch, capsys) -> str:
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", [script, *args])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    return capsys.readouterr().out


@pytest.mark.parametrize("script", ["medical_api.py", "legal_api.py", "service_api.py"])
def test_api_scripts_are_short(script):
    code = [ln for ln in (EXAMPLES / script).read_text().splitlines() if ln.strip() and not ln.startswith('"""')]
    assert len(code) <= 14, f"{script} has {len(code)} lines of code"


def test_medical_api_script(tmp_path, monkeypatch, capsys):
    from puyu_apps.medical.phantom import make_sample

    series = tmp_path / "series"  # a short series keeps it quick; the browser test runs the full sample
    make_sample(series, shape=(12, 96, 96), spacing=(2.5, 2.5, 5.0), seed=3)
    out = _run("medical_api.py", [str(series), TINY], tmp_path, monkeypatch, capsys)
    assert "CHEST CT REPORT" in out and "Lung-RADS v2022:" in out and "12 slices" in out
    assert "<h2>Key slices</h2>" in (tmp_path / "report.html").read_text()


def test_legal_api_script(samples, tmp_path, monkeypatch, capsys):
    out = _run("legal_api.py", [str(samples / "legal" / "contract_en_digital.pdf"), TINY], tmp_path, monkeypatch,
               capsys)
    assert "pages: page 1/2" in out and "[high] limitation_of_liability" in out
    assert (tmp_path / "review.pdf").read_bytes()[:4] == b"%PDF"


def test_service_api_script(samples, tmp_path, monkeypatch, capsys):
    out = _run("service_api.py", [str(samples / "service" / "refund.wav"), TINY], tmp_path, monkeypatch, capsys)
    assert "refund" in out.lower() and "intent: refund" in out
    assert (tmp_path / "reply.wav").read_bytes()[:4] == b"RIFF" and (tmp_path / "tickets.db").exists()


def test_custom_pipeline_is_registered_and_served(samples, tmp_path, monkeypatch, capsys):
    from puyu_apps.pipelines import unregister

    try:
        out = _run("custom_pipeline.py", [str(samples / "legal" / "contract_en_digital.pdf"), TINY], tmp_path,
                   monkeypatch, capsys)
    finally:
        unregister("acme-legal")
    assert "[high] non_compete" in out and "Acme: needs legal sign-off" in out
    assert "[medium] acme_notice_period, page 1: Acme: a notice period of 90 days" in out
    assert "findings from acme-legal" in out


def test_launcher_help():
    out = subprocess.run([sys.executable, "-m", "examples.medical_app", "--help"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert "--port" in out and "chest CT report" in out
