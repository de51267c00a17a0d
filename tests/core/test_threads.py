"""torch thread settings never exceed OMP_THREAD_LIMIT (libgomp spins forever in conv backward otherwise)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from puyu_apps._threads import EnvOverlay, safe_thread_count


def test_thread_count_clamped_to_omp_limit(monkeypatch):
    monkeypatch.setenv("OMP_THREAD_LIMIT", "1")
    assert safe_thread_count(4) == 1
    monkeypatch.setenv("OMP_THREAD_LIMIT", "3")
    assert safe_thread_count(4) == 3 and safe_thread_count(2) == 2
    monkeypatch.setenv("OMP_THREAD_LIMIT", "junk")
    assert safe_thread_count(4) == 4
    monkeypatch.delenv("OMP_THREAD_LIMIT")
    assert safe_thread_count(0) == 1


def test_training_step_finishes_under_omp_thread_limit():
    """The encoder recipe asks for 2 threads; under OMP_THREAD_LIMIT=1 this used to hang CI for 90 minutes."""
    code = textwrap.dedent("""
        import torch
        from puyu_apps._threads import set_torch_threads
        assert set_torch_threads(2) == 1
        m = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU())
        m(torch.randn(4, 1, 16, 16)).sum().backward()
        print("done")
    """)
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "done" in out.stdout, out.stderr


def test_env_overlay_reads_live_environment(monkeypatch):
    monkeypatch.delenv("OMP_THREAD_LIMIT", raising=False)
    env = EnvOverlay(OMP_THREAD_LIMIT="1")
    monkeypatch.setenv("PUYU_OVERLAY_PROBE", "x")  # set after the overlay was made: still seen
    assert env["PUYU_OVERLAY_PROBE"] == "x" and dict(env)["OMP_THREAD_LIMIT"] == "1"
    assert "OMP_THREAD_LIMIT" not in os.environ


def test_legal_ocr_leaves_process_environment_alone(monkeypatch):
    import numpy as np
    import pytest

    pytest.importorskip("pytesseract")
    from puyu_apps.legal.ocr import ocr_words

    monkeypatch.delenv("OMP_THREAD_LIMIT", raising=False)
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (900, 200), "white")
    font = ImageFont.truetype("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 48)
    ImageDraw.Draw(img).text((30, 60), "Payment terms", fill="black", font=font)
    words, _ = ocr_words(np.asarray(img), "eng")
    assert "Payment" in [w.text for w in words]
    assert "OMP_THREAD_LIMIT" not in os.environ
