"""PII desensitisation: Chinese resident ID numbers (checksum-validated), mobile and landline numbers, bank card
numbers (Luhn-validated), e-mail addresses and names in common patterns ("患者张三", "张先生", "Mr. John Smith").

    >>> mask_pii("患者张三，身份证 11010519491231002X，电话 13812345678")
    '患者[NAME]，身份证 [ID]，电话 [PHONE]'

Validation keeps false positives down: an 18-character string whose check character is wrong is not an ID number
(it may still be masked as a bank card if it passes Luhn), a 16-digit number that fails Luhn is not a card.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Iterable

__all__ = ["PIIFinding", "find_pii", "mask_pii", "valid_cn_id", "luhn_ok", "KINDS"]

KINDS = ("ID", "BANK_CARD", "PHONE", "EMAIL", "NAME")

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def valid_cn_id(s: str) -> bool:
    """True when ``s`` is an 18-character PRC resident ID with a real birth date and a correct check character."""
    s = s.upper()
    if not re.fullmatch(r"[1-9]\d{16}[\dX]", s):
        return False
    try:
        birth = _dt.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    if not (1880 <= birth.year and birth <= _dt.date.today()):
        return False
    total = sum(int(c) * w for c, w in zip(s[:17], _ID_WEIGHTS))
    return _ID_CHECK[total % 11] == s[17]


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum used by bank card numbers."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


@dataclass(frozen=True)
class PIIFinding:
    kind: str  # one of KINDS
    start: int
    end: int
    text: str


_NB = r"(?<![0-9A-Za-z])"  # no digit/letter before
_NA = r"(?![0-9A-Za-z])"  # no digit/letter after
_ID_RE = re.compile(_NB + r"[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]" + _NA)
_CARD_RE = re.compile(_NB + r"\d{4}(?:[ -]?\d{4}){2,3}(?:[ -]?\d{1,3})?" + _NA)
_MOBILE_RE = re.compile(r"(?<![0-9+])(?:(?:\+|00)86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?!\d)")
_LANDLINE_RE = re.compile(r"(?<!\d)(?:(?:\+|00)86[ -]?)?(?:\(0\d{2,3}\)\s?|0\d{2,3}[ -])\d{3,4}[ -]?\d{4}"
                          r"(?:\s?(?:转|ext\.?|x)\s?\d{1,5})?(?!\d)")
_INTL_RE = re.compile(r"(?<![\w+])\+(?!86)\d{1,3}[ -]?\(?\d{1,4}\)?(?:[ -]?\d{2,4}){2,4}(?!\d)")
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")

# Common Chinese surnames (single and compound); a name is a surname plus one or two Han characters.
_SURNAMES_2 = "欧阳 司马 诸葛 上官 东方 夏侯 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 令狐 端木 南宫".split()
_SURNAMES_1 = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
               "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
               "常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴"
               "霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑"
               "景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝")
_SURNAME = "(?:" + "|".join(_SURNAMES_2) + "|[" + _SURNAMES_1 + "])"
_HAN = r"[\u4e00-\u9fff]"
# Characters that usually follow a name rather than belong to it (trimmed from a 3-character match).
_AFTER_NAME = set("男女于因的今来在是入主等和与及说称诉反将已现年岁先您你他她们为到从被签同说")
_CN_ROLE = (r"(?:患者|病人|病患|伤者|姓名|名字|客户|顾客|用户|联系人|申请人|被申请人|投保人|被保险人|受益人|家属|监护人|"
            r"医生|医师|主治医师|护士|经办人|负责人|代理人|法定代表人|委托人|甲方|乙方|原告|被告|签字人|签名|收件人|"
            r"寄件人|先生|女士)")
_CN_NAME_AFTER_ROLE = re.compile(_CN_ROLE + r"\s*[:：]?\s*(" + _SURNAME + _HAN + r"{1,2})")
_CN_NAME_TITLE = re.compile(r"(" + _SURNAME + _HAN + r"{0,2}?)(?=先生|女士|小姐|医生|大夫|老师|律师|经理|同志|阿姨|师傅)")
_EN_TITLE = re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?\s+((?:[A-Z][a-z'\-]+)(?:\s+[A-Z][a-z'\-]+){0,2})")
_EN_ROLE = re.compile(r"\b(?:[Pp]atient|[Nn]ame|[Cc]ustomer|[Cc]lient|[Cc]ontact|[Ss]igned by|[Dd]ear|[Cc]aller)"
                      r"\s*[:,]?\s+((?:[A-Z][a-z'\-]+)(?:\s+[A-Z][a-z'\-]+){1,2})")


def _name_spans(text: str) -> Iterable[tuple[int, int]]:
    for m in _CN_NAME_AFTER_ROLE.finditer(text):
        s, e = m.span(1)
        if e - s == 3 and text[e - 1] in _AFTER_NAME:
            e -= 1
        if e - s == 4 and text[s:s + 2] not in _SURNAMES_2:
            e -= 1  # a single-character surname plus at most two characters
        yield s, e
    for m in _CN_NAME_TITLE.finditer(text):
        yield m.span(1)
    for rx in (_EN_TITLE, _EN_ROLE):
        for m in rx.finditer(text):
            yield m.span(1)


def find_pii(text: str, kinds: Iterable[str] = KINDS) -> list[PIIFinding]:
    """Every PII span in ``text`` (non-overlapping, in order). ``kinds`` restricts what is looked for."""
    wanted = set(kinds)
    unknown = wanted - set(KINDS)
    if unknown:
        raise ValueError(f"kinds: unknown PII kind(s) {sorted(unknown)}; choose from {KINDS}")
    found: list[PIIFinding] = []
    taken: list[tuple[int, int]] = []

    def add(kind: str, s: int, e: int) -> None:
        if e <= s or any(s < te and ts < e for ts, te in taken):
            return
        taken.append((s, e))
        found.append(PIIFinding(kind, s, e, text[s:e]))

    if "EMAIL" in wanted:
        for m in _EMAIL_RE.finditer(text):
            add("EMAIL", *m.span())
    if "ID" in wanted:
        for m in _ID_RE.finditer(text):
            if valid_cn_id(m.group()):
                add("ID", *m.span())
    if "BANK_CARD" in wanted:
        for m in _CARD_RE.finditer(text):
            digits = re.sub(r"[ -]", "", m.group())
            if 13 <= len(digits) <= 19 and luhn_ok(digits) and not valid_cn_id(digits):
                add("BANK_CARD", *m.span())
    if "PHONE" in wanted:
        for rx in (_MOBILE_RE, _LANDLINE_RE, _INTL_RE):
            for m in rx.finditer(text):
                add("PHONE", *m.span())
    if "NAME" in wanted:
        for s, e in _name_spans(text):
            add("NAME", s, e)
    found.sort(key=lambda f: f.start)
    return found


def mask_pii(text: str, kinds: Iterable[str] = KINDS, template: str = "[{kind}]") -> str:
    """``text`` with every PII span replaced by ``template`` (``{kind}`` is the PII kind)."""
    if not text:
        return text
    out, last = [], 0
    for f in find_pii(text, kinds):
        out.append(text[last:f.start])
        out.append(template.format(kind=f.kind))
        last = f.end
    out.append(text[last:])
    return "".join(out)
