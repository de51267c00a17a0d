"""The docs site builds with warnings as errors (``mkdocs build --strict``), as CI builds it: broken links and
anchors, pages left out of the nav, missing snippets and docstrings that do not resolve all fail here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_docs_site_builds_strict(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason="pip install 'puyu_apps[docs]'")
    site = tmp_path / "site"
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    assert "MedicalReportPipeline" in (site / "reference" / "medical" / "index.html").read_text()
    assert "Bad uploads" in (site / "examples" / "index.html").read_text()
    for image in (ROOT / "docs" / "images").glob("*.png"):
        assert (site / "images" / image.name).exists()
