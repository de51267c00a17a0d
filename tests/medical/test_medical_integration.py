"""End to end with the embedded default LLM on a generated 256x256x60 chest series with three nodules."""

from __future__ import annotations

import numpy as np
import pytest

from puyu_apps.medical.lungrads import nodule_category


@pytest.mark.integration
def test_sample_series_end_to_end_with_default_llm(tmp_path):
    from puyu_apps.medical import MedicalReportPipeline
    from puyu_apps.medical.phantom import make_sample

    _, ph = make_sample(tmp_path / "sample", shape=(60, 256, 256), spacing=(1.4, 1.4, 2.5))
    with MedicalReportPipeline(max_new_tokens=160) as pipe:
        r = pipe(tmp_path / "sample", history="62-year-old man, current smoker, 35 pack-years; annual screening.")
    assert len(r.nodules) == 3, r.to_text()
    for truth in ph.nodules:
        m = min(r.nodules, key=lambda n: np.linalg.norm(np.subtract(n.centre_lps_mm, truth["centre_lps"])))
        assert np.linalg.norm(np.subtract(m.centre_lps_mm, truth["centre_lps"])) < 3
        assert abs(m.mean_diameter_mm - truth["diameter_mm"]) <= 1.5, (m, truth)
        assert m.type == truth["kind"] and m.side == truth["side"]
        assert m.category == nodule_category(truth["kind"], truth["diameter_mm"], truth["solid_mm"])
    assert r.lung_rads == "4A"
    assert len(r.findings.split()) >= 8 and "Lung-RADS 4A" in r.impression.replace("category ", "")
    assert r.llm_text.strip() and r.engine["model"] == "smollm2-135m-instruct"
    assert len(r.retrieved_phrases) == 3
    assert r.to_html().count("data:image/png;base64,") == 3
