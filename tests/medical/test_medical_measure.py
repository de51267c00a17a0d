"""Lung-RADS rules, the report check, and measurements on phantoms with known nodules."""

from __future__ import annotations

import numpy as np
import pytest

from puyu_apps.medical.lungrads import correct_text, mentioned_categories, nodule_category, study_category
from puyu_apps.medical.report import check_report, parse_sections


@pytest.mark.parametrize("kind,d,solid,cat", [
    ("solid", 5.9, 0, "2"), ("solid", 6.0, 0, "3"), ("solid", 7.94, 0, "3"), ("solid", 7.96, 0, "4A"),
    ("solid", 14.9, 0, "4A"), ("solid", 15.0, 0, "4B"), ("part-solid", 5.5, 3, "2"), ("part-solid", 12, 5.9, "3"),
    ("part-solid", 12, 6.0, "4A"), ("part-solid", 20, 8.0, "4B"), ("ground-glass", 29.9, 0, "2"),
    ("ground-glass", 30.0, 0, "3"),
])
def test_nodule_category(kind, d, solid, cat):
    assert nodule_category(kind, d, solid) == cat


def test_study_category_and_bad_kind():
    assert study_category([]) == "1"
    assert study_category(["2", "4A", "3"]) == "4A"
    assert study_category(["4B"], evaluable=False) == "0"
    with pytest.raises(ValueError, match="kind"):
        nodule_category("calcified", 5)


def test_text_correction():
    assert mentioned_categories("Lung-RADS 4A. Also category 2.") == ["4A", "2"]
    fixed, wrong = correct_text("Suspicious nodule, Lung-RADS category 2.", "4A")
    assert wrong == ["2"] and "Lung-RADS category 4A" in fixed and "2." not in fixed
    fixed, wrong = correct_text("A nodule.", "3")
    assert wrong == [] and fixed.endswith("Lung-RADS category 3.")


def test_check_report_flags_and_corrects():
    nodules = [{"mean_diameter_mm": 9.1, "solid_diameter_mm": 9.1, "category": "4A"}]
    findings, impression = parse_sections("FINDINGS: A 9 mm solid nodule, category 4A. A 25 mm mass.\n"
                                          "IMPRESSION: Benign, Lung-RADS 2.")
    assert findings.startswith("A 9 mm") and impression.startswith("Benign")
    f, i, flags, check = check_report(findings, impression, nodules, "4A", True)
    assert "Lung-RADS 4A" in i and check["corrected"] and not check["agreed"]
    assert any("stated Lung-RADS 2" in x for x in flags) and any("25 mm" in x for x in flags)
    _, _, flags, check = check_report("A 9 mm nodule.", "Lung-RADS 4A.", nodules, "4A", True)
    assert flags == [] and check["agreed"]


def test_measure_on_ground_truth_label():
    """With the true label as the probability map, the measurements match the phantom."""
    from puyu_apps.medical.dicom_io import CTVolume
    from puyu_apps.medical.measure import lung_mask, lung_volume_ml, measure
    from puyu_apps.medical.phantom import SAMPLE_NODULES, make_phantom

    ph = make_phantom((40, 128, 128), (1.6, 1.6, 2.5), SAMPLE_NODULES, seed=0)
    vol = CTVolume(hu=ph.hu, spacing=ph.spacing, origin=np.array(ph.origin), row_dir=np.array([1.0, 0, 0]),
                   col_dir=np.array([0, 1.0, 0]), slice_dir=np.array([0, 0, 1.0]))
    lung = lung_mask(vol.hu)
    true_ml = ph.lung.sum() * 1.6 * 1.6 * 2.5 / 1000
    assert lung_volume_ml(vol, lung) == pytest.approx(true_ml, rel=0.05)
    found = measure(vol, ph.label.astype(np.float32), lung)
    assert len(found) == 3
    for truth in ph.nodules:
        m = min((f.info for f in found), key=lambda i: np.linalg.norm(np.subtract(i["centre_lps_mm"],
                                                                                   truth["centre_lps"])))
        assert abs(m["mean_diameter_mm"] - truth["diameter_mm"]) <= 1.5, (m, truth)
        assert m["type"] == truth["kind"] and m["side"] == truth["side"]
        assert m["lobe"].startswith(truth["side"])
    solid = next(f.info for f in found if f.info["type"] == "solid")
    assert solid["mean_hu"] > -300 and solid["slices"][1] > solid["slices"][0]


def test_filter_findings_keeps_only_consistent_sentences():
    from puyu_apps.medical.report import filter_findings

    nodules = [{"mean_diameter_mm": 14.8, "solid_diameter_mm": 6.3, "type": "part-solid", "lobe": "left lower lobe"},
               {"mean_diameter_mm": 9.6, "solid_diameter_mm": 9.6, "type": "solid", "lobe": "right middle lobe"}]
    text = ("A 15 mm part-solid nodule in the left lower lobe. A 15mm ground glass nodule. A solid nodule of "
            "9.6 mm in the right middle lobe. It was graded IIIC with 15 mm. A 9.6 mm nodule in the left upper "
            "lobe. The patient was treated with chemotherapy.")
    kept, dropped = filter_findings(text, nodules)
    assert kept == "A 15 mm part-solid nodule in the left lower lobe. A solid nodule of 9.6 mm in the right middle lobe."
    assert dropped == 4
