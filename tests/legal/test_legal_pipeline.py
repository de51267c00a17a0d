"""End to end on generated contracts with the tiny random LLM: planted risks, signatures and seals, empty
blocks, checks, JSON/text/HTML outputs, progress, CLI; and one integration run with the embedded LLM."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from puyu_apps.legal import ContractReview, ContractReviewPipeline
from puyu_apps.legal.metrics import match_boxes
from puyu_apps.legal.rules import CATEGORIES

TINY = "tiny-random-llama"
ALL = ["en_digital", "en_scanned", "zh_digital", "zh_scanned"]


@pytest.mark.parametrize("name", ALL)
def test_planted_risks_are_flagged(review, contracts, name):
    result = review(name)
    truth = contracts[name][1]
    assert len([c for c in result.clauses if c.number]) == truth.n_clauses
    assert set(truth.risks) <= result.categories()
    for f in result.findings:
        assert f.page >= 1 and len(f.box) == 4 and f.reason and f.severity in ("high", "medium", "low")


@pytest.mark.parametrize("name", ALL)
def test_signatures_found_and_blocks_matched(review, contracts, name):
    result = review(name)
    truth = contracts[name][1]
    pred = [(m.page, m.box) for m in result.signatures]
    gold = [(s["page"], s["box"]) for s in truth.signatures]
    tp, fp, fn = match_boxes(pred, gold, thr=0.5)
    assert fp == 0 and fn == 0, (tp, fp, fn)
    assert all(0 < m.confidence <= 1 for m in result.signatures)
    assert result.parties_signed == truth.parties_signed
    unsigned = [r for r, s in truth.parties_signed.items() if not s]
    missing = {f.clause_text and f.reason.split(" ")[0] for f in result.findings if f.category == "missing_signature"}
    assert missing == set(unsigned)
    assert all(any(b.party == r and not b.signed for b in result.signature_blocks) for r in unsigned)


def test_fields_and_checks(review):
    en = review("en_digital")
    assert [(p.role, p.name) for p in en.parties] == [("Provider", "Northwind Analytics Ltd."),
                                                      ("Client", "Bluebird Retail Inc.")]
    assert en.effective_date == "March 3, 2025" and "12" in en.term
    assert en.governing_law == "State of New York" and "New York County" in en.jurisdiction
    assert {(a.value, a.currency) for a in en.amounts} == {(50000, "USD"), (20000, "USD")}
    assert "amount_mismatch" in en.categories()  # 'USD 50,000 (Forty-Five Thousand ...)' was planted
    zh = review("zh_digital")
    assert [p.role for p in zh.parties] == ["甲方", "乙方"] and zh.effective_date == "2025年3月3日"
    assert zh.governing_law == "中华人民共和国" and "amount_mismatch" not in zh.categories()
    assert {m.kind for m in zh.signatures} == {"signature", "seal"}


def test_missing_date_and_unsigned(review):
    result = review("en_nodate")
    assert result.effective_date is None and "missing_date" in result.categories()
    assert result.parties_signed == {"Provider": False, "Client": False} and result.signatures == []


def test_outputs_json_text_html(review):
    result = review("en_digital")
    data = json.loads(result.to_json())
    assert "page_images" not in data and data["findings"][0]["category"]
    again = ContractReview.model_validate(data)
    assert again.findings == result.findings
    text = result.to_text()
    assert "Client: NOT signed" in text and "[HIGH] amount_mismatch" in text
    html = result.to_html()
    assert html.count("data:image/png;base64,") == len(result.page_images) >= 2
    assert html.count("class='box'") >= len(result.signatures) + len(result.signature_blocks)
    explained = [f for f in result.findings if f.explanation]
    assert explained and len({f.clause_index for f in explained}) <= 2  # max_explanations=2


def test_stream_reports_progress(contracts):
    pipe = ContractReviewPipeline(model=TINY, max_explanations=1, max_new_tokens=4)
    events = list(pipe.stream(contracts["zh_digital"][0]))
    stages = [e.stage for e in events if e.kind == "progress"]
    assert stages.count("pages") == 1 and "structure" in stages and "explain" in stages
    assert events[-1].kind == "result" and events[-1].result.engine["active_adapter"] is None


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="lang"):
        ContractReviewPipeline(model=TINY, lang="fra")
    with pytest.raises(ValueError, match="workers"):
        ContractReviewPipeline(model=TINY, workers=0)
    pipe = ContractReviewPipeline(model=TINY, lang="chi_sim", workers=1)
    assert ContractReviewPipeline.from_dict(pipe.to_dict()).init_parameters() == pipe.init_parameters()


def test_import_is_cheap():
    code = ("import sys, puyu_apps.legal; bad = [m for m in ('pdfplumber', 'cv2', 'pytesseract', 'pypdfium2', "
            "'reportlab') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_make_sample_and_run(tmp_path):
    from puyu_apps.cli import main

    assert main(["legal", "make-sample", "--out", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.glob("*.pdf"))
    assert names == ["contract_en_digital.pdf", "contract_en_scanned.pdf", "contract_zh_digital.pdf",
                     "contract_zh_scanned.pdf"]
    out = tmp_path / "review.html"
    assert main(["run", "legal", str(tmp_path / "contract_en_digital.pdf"), "--model", TINY, "--out", str(out),
                 "--params", '{"max_explanations": 0}']) == 0
    assert out.read_text().startswith("<!doctype html>")


def test_every_issue_category_has_patterns():
    ids = {c.id for c in CATEGORIES}
    assert {"limitation_of_liability", "indemnification", "auto_renewal", "termination_for_convenience",
            "non_compete", "exclusivity", "governing_law", "penalty", "confidentiality", "assignment",
            "payment_terms"} <= ids


@pytest.mark.integration
def test_embedded_llm_explains_flagged_clauses(contracts):
    pipe = ContractReviewPipeline(max_explanations=2, max_new_tokens=40)  # the embedded default model
    result = pipe(contracts["en_digital"][0])
    explained = [f for f in result.findings if f.explanation]
    assert explained
    assert all(len(f.explanation) > 20 and any(ch.isalpha() for ch in f.explanation) for f in explained)
    assert result.engine["model"] and set(contracts["en_digital"][1].risks) <= result.categories()


def test_llm_classify_option_runs_and_keeps_rule_findings(contracts):
    pipe = ContractReviewPipeline(model=TINY, max_explanations=0, llm_classify=True)
    events = list(pipe.stream(contracts["en_digital"][0]))
    result = events[-1].result
    assert [e for e in events if e.stage == "classify"]
    assert set(contracts["en_digital"][1].risks) <= {f.category for f in result.findings if f.source == "rule"}
    ids = {c.id for c in CATEGORIES}
    assert all(f.category in ids and f.reason for f in result.findings if f.source == "llm")


def test_annotated_pdf(review, tmp_path):
    import pdfplumber

    result = review("zh_digital")
    out = result.to_pdf(tmp_path / "review.pdf")
    with pdfplumber.open(out) as pdf:
        assert len(pdf.pages) >= 1 + len(result.page_images)
        assert "技术服务合同" in (pdf.pages[0].extract_text() or "").replace(" ", "") or "Contract review" in (
            pdf.pages[0].extract_text() or "")
        annotated = pdf.pages[-1]
        assert annotated.images and len(annotated.rects) >= len(result.signatures)
