"""The pipeline end to end with tiny-random-llama (structure, not wording), privacy, bad input, CLI."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from puyu_apps.medical import MedicalReportPipeline, MedicalReportResult, NotDicomError

IDENTIFIERS = ("DOE", "JANE", "PID-77123", "19511231", "ACC-99881")


def _no_images(text: str) -> str:
    return re.sub(r"[A-Za-z0-9+/=]{200,}", "<png>", text)


def test_import_is_cheap():
    import subprocess
    import sys

    code = ("import sys, puyu_apps.medical; bad=[m for m in sys.modules if m.split('.')[0] in "
            "('monai','pydicom','PIL','scipy','nibabel')]; print(bad); sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_registered_and_typed_args():
    import puyu_apps

    assert puyu_apps.pipeline("medical", model="tiny-random-llama").__class__ is MedicalReportPipeline
    with pytest.raises(ValueError, match="language"):
        MedicalReportPipeline(language="fr")
    pipe = MedicalReportPipeline(keep_identifiers=True, language="zh")
    assert MedicalReportPipeline.from_dict(json.loads(json.dumps(pipe.to_dict()))).init_parameters() == \
        pipe.init_parameters()


def test_end_to_end_structure(tiny_result, small_series):
    pipe, events = tiny_result
    assert [e.kind for e in events][-1] == "result"
    stages = {e.stage for e in events if e.kind == "progress"}
    assert {"load", "segment", "measure", "report"} <= stages
    r = events[-1].result
    assert isinstance(r, MedicalReportResult) and r.evaluable
    ph = small_series[2]
    assert len(r.nodules) == 3
    for truth in ph.nodules:
        m = min(r.nodules, key=lambda n: np.linalg.norm(np.subtract(n.centre_lps_mm, truth["centre_lps"])))
        assert abs(m.mean_diameter_mm - truth["diameter_mm"]) <= 1.5 and m.type == truth["kind"]
    assert r.lung_rads == "4A"  # solid 9 mm -> 4A; part-solid 16 mm with 7 mm solid part -> 4A
    assert "Lung-RADS" in r.impression and r.impression.count("4A") >= 1
    assert r.lung_volume_ml and r.lung_volume_ml > 100
    assert {"load", "segment", "measure", "report", "render"} <= set(r.timings_s)
    assert MedicalReportResult.model_validate_json(r.to_json()) == r
    png = base64.b64decode(r.key_images[0].png_base64)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    html = r.to_html()
    assert html.count("data:image/png;base64,") == 3 and "Lung-RADS v2022: 4A" in html
    assert "FINDINGS:" in r.to_text() and "Lung-RADS v2022: 4A" in r.to_text()


def test_identifiers_kept_out_unless_asked(tiny_result, small_series):
    r = tiny_result[1][-1].result
    for rendering in (r.to_json(), r.to_text(), r.to_html()):
        visible = _no_images(rendering).upper()
        assert not [i for i in IDENTIFIERS if i in visible]
    assert "[REDACTED]" in r.history and "40 pack-years" in r.history
    kept = MedicalReportPipeline(model="tiny-random-llama", max_new_tokens=16, keep_identifiers=True,
                                 key_images=False)(small_series[0], history="Jane Doe")
    assert kept.patient["PatientID"] == "PID-77123" and kept.history == "Jane Doe"


def test_single_slice_is_category_0(small_series):
    from pydicom.data import get_testdata_file

    pipe = MedicalReportPipeline(model="tiny-random-llama", max_new_tokens=16)
    r = pipe(get_testdata_file("CT_small.dcm"))
    assert not r.evaluable and r.lung_rads == "0" and r.nodules == []
    assert any("complete CT series" in w for w in r.warnings)
    r = pipe(get_testdata_file("693_J2KI.dcm"), language="zh")
    assert r.lung_rads == "0" and r.language == "zh" and "胸部CT报告" in r.to_text()


def test_bad_input_is_typed_and_writes_nothing(tmp_path):
    from puyu_apps.cli import main

    bad = tmp_path / "scan.dcm"
    bad.write_bytes(b"hello, not DICOM")
    with pytest.raises(NotDicomError, match="scan.dcm"):
        MedicalReportPipeline(model="tiny-random-llama")(bad)
    with pytest.raises(TypeError, match="unknown medical parameter"):
        MedicalReportPipeline(model="tiny-random-llama")(bad, histroy="x")
    out = tmp_path / "report.html"
    assert main(["medical", "report", str(bad), "--out", str(out), "--model", "tiny-random-llama"]) == 2
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


def test_cli_make_sample_and_report(tmp_path, capsys):
    from puyu_apps.cli import main

    out = tmp_path / "sample"
    assert main(["medical", "make-sample", "--out", str(out), "--size", "96", "--slices", "24",
                 "--fov", "160", "--multi-frame"]) == 0
    assert [p.name for p in out.iterdir()] == ["multiframe.dcm"]
    deid = tmp_path / "deid"
    assert main(["medical", "deidentify", str(out), "--out", str(deid)]) == 0
    import pydicom

    ds = pydicom.dcmread(deid / "multiframe.dcm")
    assert str(ds.PatientName) == "ANONYMOUS" and ds.PatientBirthDate == "" and ds.PatientIdentityRemoved == "YES"
    html = tmp_path / "r.html"
    assert main(["medical", "report", str(deid / "multiframe.dcm"), "--history", "screening", "--out", str(html),
                 "--model", "tiny-random-llama"]) == 0
    assert html.read_text().startswith("<!doctype html>")
    assert "Lung-RADS v2022" in capsys.readouterr().out
