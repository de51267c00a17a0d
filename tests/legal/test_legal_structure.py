"""Rule layer and structure on hand-made lines: numbers in words, clause segmentation, fields, categories, checks."""

from __future__ import annotations

import pytest

from puyu_apps.legal import rules
from puyu_apps.legal.ingest import words_to_lines
from puyu_apps.legal.numbers import en_words_to_number, parse_figure, zh_words_to_number
from puyu_apps.legal.structure import extract, segment
from puyu_apps.legal.types import Word


@pytest.mark.parametrize("text,value", [("伍万元整", 50000), ("肆万元整", 40000), ("贰拾万零伍佰元", 200500),
                                        ("一百二十万", 1_200_000), ("壹亿贰仟万元", 120_000_000), ("十五", 15)])
def test_zh_words(text, value):
    assert zh_words_to_number(text) == value


def test_zh_words_without_numeral_is_none():
    assert zh_words_to_number("万元整") is None  # an OCR that dropped the numeral is no amount


@pytest.mark.parametrize("text,value", [("Forty-Five Thousand US Dollars", 45000), ("one hundred and twenty "
                                        "thousand", 120000), ("two million five hundred thousand", 2_500_000)])
def test_en_words(text, value):
    assert en_words_to_number(text) == value


def test_parse_figure():
    assert parse_figure("50,000.00") == 50000 and parse_figure("50.000.00") == 50000 and parse_figure("1,250") == 1250


def _lines(rows: list[str]):
    words = []
    for i, row in enumerate(rows):
        x = 0.1
        for tok in row.split(" "):
            words.append(Word(tok, (x, 0.05 + i * 0.02, x + 0.01 * len(tok), 0.062 + i * 0.02)))
            x += 0.01 * len(tok) + 0.006
    return words_to_lines(words, page=1)


def test_segment_numbered_zh_and_lists():
    lines = _lines(["SUPPLY AGREEMENT", "1. Definitions. Terms have these meanings:", "(a) Goods means the goods.",
                    "(b) Price means the price.", "2. Delivery. Supplier shall deliver within 30 days.",
                    "第三条 保密 双方应保守商业秘密。", "Signature: ________", "4. Orphan heading after block."])
    clauses = segment(lines)
    numbers = [c.number for c in clauses]
    assert numbers == ["", "1", "(a)", "(b)", "2", "第三条", "4"]
    assert clauses[1].heading == "Definitions" and clauses[4].heading == "Delivery"
    assert "Signature" not in clauses[5].text  # the signature block ends the clause before it


def test_extract_fields_en():
    lines = _lines(['This Agreement is made on March 3, 2025 between Acme Widgets Ltd. ("Supplier") and',
                    'Beta Stores Inc. ("Buyer").', "1. Term. The initial term of twenty-four (24) months applies.",
                    "2. Price. Buyer shall pay USD 12,500 (Twelve Thousand Five Hundred US Dollars).",
                    "3. Law. This Agreement is governed by the laws of England and Wales, and the courts of "
                    "London have jurisdiction."])
    st = extract(lines, segment(lines))
    assert [(p.role, p.name) for p in st.parties] == [("Supplier", "Acme Widgets Ltd."), ("Buyer", "Beta Stores Inc.")]
    assert st.effective_date == "March 3, 2025"
    assert "24" in st.term
    assert st.amounts[0].value == 12500 and st.amounts[0].words_value == 12500 and st.amounts[0].currency == "USD"
    assert st.governing_law.startswith("England")


def test_extract_fields_zh_and_mismatch_check():
    lines = _lines(["甲方：北京测试科技有限公司", "乙方：上海示例贸易有限公司", "签订日期：2024年6月1日",
                    "第一条 本合同有效期为两年。", "第二条 甲方应于验收后支付服务费人民币叁万元整（¥35,000.00）。",
                    "第三条 本合同适用中华人民共和国法律。"])
    st = extract(lines, segment(lines))
    assert [p.role for p in st.parties] == ["甲方", "乙方"]
    assert st.effective_date == "2024年6月1日" and st.term == "两年"
    assert st.amounts[0].value == 35000 and st.amounts[0].words_value == 30000
    assert st.governing_law == "中华人民共和国"
    found = {f.category for f in rules.checks(st, [], 1)}
    assert {"amount_mismatch", "missing_signature"} <= found and "missing_date" not in found


@pytest.mark.parametrize("text,cat", [
    ("Neither party's aggregate liability shall exceed the fees paid.", "limitation_of_liability"),
    ("Customer shall indemnify and hold harmless the Vendor.", "indemnification"),
    ("This Agreement renews automatically for successive one-year terms.", "auto_renewal"),
    ("Either party may terminate this Agreement at any time for convenience.", "termination_for_convenience"),
    ("Employee shall not compete with the Company for two years (non-compete).", "non_compete"),
    ("Vendor shall be the exclusive supplier of parts.", "exclusivity"),
    ("This Agreement is governed by the laws of Singapore.", "governing_law"),
    ("Seller shall pay liquidated damages of 5% of the price.", "penalty"),
    ("Recipient shall not disclose Confidential Information.", "confidentiality"),
    ("Licensee may not assign this Agreement.", "assignment"),
    ("Invoices are payable within 30 days.", "payment_terms"),
    ("乙方在本合同项下的赔偿责任总额不超过合同金额。", "limitation_of_liability"),
    ("合同期满后自动续期一年。", "auto_renewal"), ("甲方可随时书面通知乙方解除本合同。", "termination_for_convenience"),
    ("乙方不得从事与甲方相竞争的业务。", "non_compete"), ("违约方应支付违约金十万元。", "penalty"),
    ("未经同意，任何一方不得转让本合同。", "assignment"), ("因本合同发生的争议提交仲裁。", "governing_law"),
])
def test_categories(text, cat):
    assert cat in rules.classify(text)


def test_exclusive_jurisdiction_is_not_exclusivity():
    cats = rules.classify("The parties submit to the exclusive jurisdiction of the courts of Paris.")
    assert "exclusivity" not in cats and "governing_law" in cats


def test_blocks_parties_matching_and_inference():
    from puyu_apps.legal.signatures import find_blocks, infer_blocks, match_marks
    from puyu_apps.legal.types import Line, SignatureMark

    lines = [Line("Provider: Northwind Ltd.", (0.1, 0.60, 0.35, 0.615), 1),
             Line("Client: Bluebird Inc.", (0.55, 0.60, 0.78, 0.615), 1),
             Line("Signature: ________", (0.1, 0.68, 0.35, 0.695), 1),
             Line("Signature: ________", (0.55, 0.68, 0.80, 0.695), 1)]
    blocks = find_blocks(lines, ["Provider", "Client"], {"Provider": "Northwind Ltd.", "Client": "Bluebird Inc."})
    assert [(b.party, b.signed) for b in blocks] == [("Provider", False), ("Client", False)]
    assert blocks[0].box[2] < lines[3].box[0]  # the left region stops before the right label
    marks = [SignatureMark(page=1, box=(0.2, 0.66, 0.33, 0.69), kind="signature", confidence=0.9)]
    match_marks(blocks, marks)
    assert [(b.party, b.signed, b.marks) for b in blocks] == [("Provider", True, [0]), ("Client", False, [])]
    # OCR lost the right-hand labels: a mark beside the found block goes to the party without a block
    lost = find_blocks(lines[:3], ["Provider", "Client"], {})
    marks.append(SignatureMark(page=1, box=(0.62, 0.66, 0.75, 0.69), kind="signature", confidence=0.9))
    lost[0].box = (0.08, 0.62, 0.5, 0.71)
    match_marks(lost, marks)
    infer_blocks(lost, marks, ["Provider", "Client"])
    assert {(b.party, b.signed) for b in lost} == {("Provider", True), ("Client", True)}


def test_explanations_end_on_a_whole_sentence():
    from puyu_apps.legal.pipeline import _tidy

    assert _tidy("It caps liability. The cap is low and the", "length") == "It caps liability."
    assert _tidy("\n\n", "length") == "(the model gave no explanation)"
    assert _tidy("First.\n\nSecond.", "eos") == "First."


def test_parse_model_categories():
    assert rules.parse_categories("Indemnification, auto-renewal") == ["indemnification", "auto_renewal"]
    assert rules.parse_categories("governing_law and Payment terms") == ["governing_law", "payment_terms"]
    assert rules.parse_categories("none") == [] and rules.parse_categories("") == []
