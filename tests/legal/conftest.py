"""Generated contracts shared by the legal tests (made once per session; OCR'd pages are the slow part)."""

from __future__ import annotations

import pytest

TINY = "tiny-random-llama"


@pytest.fixture(scope="session")
def contracts(tmp_path_factory):
    from puyu_apps.legal.samples import SampleSpec, make_contract

    root = tmp_path_factory.mktemp("contracts")
    specs = {
        "en_digital": SampleSpec("en", signed=(True, False), mismatch=True),
        "en_scanned": SampleSpec("en", scanned=True, signed=(True, True), seed=1),
        "zh_digital": SampleSpec("zh", signed=(True, True), seed=2),
        "zh_scanned": SampleSpec("zh", scanned=True, signed=(False, True), seed=3),
        "en_nodate": SampleSpec("en", signed=(False, False), missing_date=True, seed=4),
    }
    out = {}
    for name, spec in specs.items():
        path = root / f"{name}.pdf"
        out[name] = (path, make_contract(path, spec))
    return out


@pytest.fixture(scope="session")
def review(contracts):
    """Review results on the tiny random LLM (structure only; the rule layer carries the categories)."""
    from puyu_apps.legal import ContractReviewPipeline

    pipe = ContractReviewPipeline(model=TINY, max_explanations=2, max_new_tokens=6)
    cache: dict = {}

    def run(name):
        if name not in cache:
            cache[name] = pipe(contracts[name][0])
        return cache[name]

    return run
