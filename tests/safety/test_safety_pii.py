"""PII desensitisation on realistic Chinese and English text; checksums decide what is an ID or a card."""

from __future__ import annotations

import logging

import pytest

from puyu_apps.safety import find_pii, install_log_masking, luhn_ok, mask_pii, valid_cn_id


def _with_check(first17: str) -> str:
    """An 18-character ID with the GB 11643 check character computed here, independently of the library."""
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    total = sum(int(c) * w for c, w in zip(first17, weights))
    return first17 + "10X98765432"[total % 11]


def _luhn_complete(prefix: str) -> str:
    for d in "0123456789":
        if luhn_ok(prefix + d):
            return prefix + d
    raise AssertionError


VALID_ID = _with_check("44030419900307123")
VALID_ID_X = "11010519491231002X"  # the GB 11643-1999 example
WRONG_CHECK = VALID_ID[:-1] + ("0" if VALID_ID[-1] != "0" else "1")
CARD = _luhn_complete("622202123456789012")  # 19 digits
CARD_BAD = CARD[:-1] + str((int(CARD[-1]) + 1) % 10)


def test_id_checksum():
    assert valid_cn_id(VALID_ID) and valid_cn_id(VALID_ID_X) and valid_cn_id(VALID_ID_X.lower())
    assert not valid_cn_id(WRONG_CHECK)
    assert not valid_cn_id(_with_check("44030419901307123"))  # month 13
    assert not valid_cn_id(_with_check("44030419900230123"))  # 30 February
    assert not valid_cn_id(_with_check("44030430000101123"))  # born in the future


def test_chinese_medical_note():
    text = (f"患者张三，男，45岁，身份证号{VALID_ID}，联系电话138-1234-5678，家属李四（13912345678），"
            f"住址电话 010-87654321，邮箱 zhangsan@example.com。")
    out = mask_pii(text)
    for secret in ("张三", VALID_ID, "138-1234-5678", "13912345678", "87654321", "zhangsan@example.com", "李四"):
        assert secret not in out, (secret, out)
    assert out.startswith("患者[NAME]，男，45岁，身份证号[ID]，联系电话[PHONE]")
    assert "[EMAIL]" in out and out.count("[PHONE]") == 3


def test_invalid_id_checksum_not_masked_as_id():
    kinds = [f.kind for f in find_pii(f"编号 {WRONG_CHECK} 仅为流水号")]
    assert "ID" not in kinds


def test_bank_card_luhn():
    grouped = " ".join(CARD[i:i + 4] for i in range(0, len(CARD), 4))
    assert mask_pii(f"退款到卡号 {grouped} 上") == "退款到卡号 [BANK_CARD] 上"
    assert mask_pii(f"card {CARD}") == "card [BANK_CARD]"
    assert "[BANK_CARD]" not in mask_pii(f"订单号 {CARD_BAD}")


def test_landlines_and_international():
    assert mask_pii("请拨打(0755)12345678转123") == "请拨打[PHONE]"
    assert mask_pii("call +86 138 1234 5678 or +1 415-555-0100 now") == "call [PHONE] or [PHONE] now"


@pytest.mark.parametrize("text,name", [
    ("姓名：欧阳娜娜，性别：女", "欧阳娜娜"),
    ("被保险人王小明于2024年入院", "王小明"),
    ("王女士来电投诉", "王"),
    ("请转告刘建国先生", "刘建国"),
    ("甲方：陈静", "陈静"),
    ("Patient John Smith was admitted on Monday.", "John Smith"),
    ("Mr. David O'Neil signed the lease.", "David O'Neil"),
    ("Dear Mary Jones, your refund is on its way.", "Mary Jones"),
])
def test_names_in_common_patterns(text, name):
    out = mask_pii(text)
    assert name not in out and "[NAME]" in out, out


def test_names_keep_following_words():
    assert mask_pii("患者张三今日入院") == "患者[NAME]今日入院"
    assert mask_pii("患者李四男，45岁") == "患者[NAME]男，45岁"


def test_no_false_positives_on_ordinary_text():
    for text in ("右肺上叶见6 mm结节，建议12个月后复查。", "合同总额为 1,200,000 元，分 3 期支付。",
                 "The lease runs from 2024-01-01 to 2026-12-31.", "订单 20261122 已发货", "The CT scan was normal."):
        assert mask_pii(text) == text


def test_kind_selection():
    text = f"张三 {VALID_ID} a@b.cn"
    assert mask_pii(text, kinds=["EMAIL"]) == f"张三 {VALID_ID} [EMAIL]"
    with pytest.raises(ValueError, match="kinds"):
        mask_pii(text, kinds=["SSN"])


def test_logs_are_masked(caplog):
    install_log_masking()
    log = logging.getLogger("puyu_apps.test")
    with caplog.at_level(logging.INFO, logger="puyu_apps.test"):
        log.info("caller %s gave id %s", "13812345678", VALID_ID)
    assert caplog.records
    message = caplog.records[-1].getMessage()
    assert "13812345678" not in message and VALID_ID not in message
    assert "[PHONE]" in message and "[ID]" in message


def test_log_masking_keeps_argument_structure():
    """uvicorn's access formatter unpacks record.args: masking must keep the 5-tuple."""
    install_log_masking()
    record = logging.getLogger("uvicorn.access").makeRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "GET", "/healthz?phone=13812345678", "1.1", 200), None)
    factory_record = logging.getLogRecordFactory()("uvicorn.access", logging.INFO, __file__, 1,
                                                    '%s - "%s %s HTTP/%s" %d',
                                                    ("127.0.0.1:1", "GET", "/q?id=13812345678", "1.1", 200), None)
    assert isinstance(factory_record.args, tuple) and len(factory_record.args) == 5
    assert "13812345678" not in factory_record.getMessage() and "[PHONE]" in factory_record.getMessage()
    from puyu_apps.safety import PIIMaskingFilter

    PIIMaskingFilter().filter(record)
    assert len(record.args) == 5 and "[PHONE]" in record.getMessage()
