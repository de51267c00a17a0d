"""Fixtures of the medical tests: small synthetic series written as real DICOM (128x128x40)."""

from __future__ import annotations

import pytest

SMALL = dict(shape=(40, 128, 128), spacing=(1.6, 1.6, 2.5))


@pytest.fixture(scope="session")
def small_series(tmp_path_factory):
    from puyu_apps.medical.phantom import make_sample

    out = tmp_path_factory.mktemp("medical") / "series"
    paths, ph = make_sample(out, patient_name="DOE^JANE", patient_id="PID-77123", birth_date="19511231",
                            accession="ACC-99881", **SMALL)
    return out, paths, ph


@pytest.fixture(scope="session")
def tiny_result(small_series):
    from puyu_apps.medical import MedicalReportPipeline

    pipe = MedicalReportPipeline(model="tiny-random-llama", max_new_tokens=40)
    events = list(pipe.stream(small_series[0], history="Jane Doe, 61, former smoker (40 pack-years)."))
    return pipe, events
