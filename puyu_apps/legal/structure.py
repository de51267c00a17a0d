"""Contract structure from the page lines: clauses (numbered headings, 第X条, lists), parties, dates, term,
amounts with currencies (and their words), governing law and jurisdiction."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .numbers import en_words_to_number, parse_figure, zh_words_to_number
from .types import Amount, Box, Clause, Line, Party

_CN_NUM = "一二三四五六七八九十百零〇两"
CLAUSE_START = [
    re.compile(rf"^\s*(第\s*[{_CN_NUM}\d]+\s*条)\s*(.*)$"),
    re.compile(r"^\s*((?:Article|Section|Clause|ARTICLE|SECTION)\s+\d+(?:\.\d+)*)[.:]?\s+(.*)$"),
    re.compile(r"^\s*(\d{1,3}(?:\.\d{1,3})*)(?:[.)]\s*|\.?\s+)(?=[A-Z\u4e00-\u9fff\"“(])(.*)$"),
    re.compile(rf"^\s*([{_CN_NUM}]+\s*、)\s*(.*)$"),
    re.compile(rf"^\s*([（(]\s*(?:[a-z]|[ivx]+|[{_CN_NUM}]+|\d+)\s*[)）])\s*(.*)$"),
]
BLOCK_END = re.compile(r"^\s*(IN WITNESS|SIGNED|EXECUTED)|signature\s*[:：]|签字|盖章|签章", re.I)
MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
DATE = re.compile(rf"\b(?:{MONTHS})\s+\d{{1,2}},?\s+\d{{4}}\b|\b\d{{1,2}}\s+(?:{MONTHS})\s+\d{{4}}\b|"
                  r"\b\d{4}-\d{2}-\d{2}\b|\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日")
_CJK_SPACE = re.compile(r"(?<=[\u4e00-\u9fff\uff08-\uff1a，。、；：（）])\s+|\s+(?=[\u4e00-\u9fff，。、；：（）])")
CURRENCIES = {"USD": "USD", "US$": "USD", "$": "USD", "EUR": "EUR", "€": "EUR", "GBP": "GBP", "£": "GBP",
              "RMB": "CNY", "CNY": "CNY", "¥": "CNY", "￥": "CNY", "人民币": "CNY"}
AMOUNT_EN = re.compile(r"(USD|US\$|EUR|GBP|RMB|CNY|\$|€|£|¥|￥)\s?(\d{1,3}(?:[,.]\d{3})+(?:[.,]\d{1,2})?|\d+(?:\.\d+)?)"
                       r"(?:\s*\(([A-Za-z][A-Za-z \-]+?)\))?")
AMOUNT_ZH = re.compile(r"人民币\s*([零〇一二三四五六七八九十百千万亿两壹贰叁肆伍陆柒捌玖拾佰仟萬億元圆整正角分]+)\s*[（(]\s*"
                       r"[¥￥Y]?\s*(\d{1,3}(?:[,.]\d{3})+(?:[.,]\d{1,2})?|\d+(?:\.\d+)?)\s*(?:元)?\s*[)）]")
PARTY_EN = re.compile(r"([A-Z][\w&.,' -]{2,80}?(?:Ltd\.?|Limited|Inc\.?|LLC|L\.L\.C\.|GmbH|Corp\.?|Corporation|"
                      r"Company|Co\.|PLC|LLP|S\.A\.))[^()]{0,80}?\(\s*(?:the\s+)?[\"“]([A-Z][\w ]{1,30})[\"”]\s*\)")
PARTY_ROLE = re.compile(r"^\s*((?:Party\s+[A-C])|甲方|乙方|丙方|(?:Client|Customer|Provider|Supplier|Vendor|Buyer|"
                        r"Seller|Licensor|Licensee|Employer|Employee|Lessor|Lessee))\s*[（(]?[^：:]{0,8}?[)）]?\s*[：:]"
                        r"\s*(\S.{1,60})$")
TERM = re.compile(r"(?:initial\s+)?term\s+of\s+([\w\s()-]{1,40}?(?:months?|years?|days?))|"
                  rf"(?:有效期|期限)(?:为|是|自.{{0,30}}起)?\s*([{_CN_NUM}\d]+\s*(?:年|个月|日|天))", re.I)
LAW = re.compile(r"governed\s+by\s+(?:and\s+construed\s+in\s+accordance\s+with\s+)?the\s+laws?\s+of\s+"
                 r"(?:the\s+)?([^,.;]+)|适用\s*(.{2,20}?)\s*(?:的)?\s*法律", re.I)
FORUM = re.compile(r"jurisdiction\s+of\s+(?:the\s+)?(courts?\s+of\s+[^,.;]+)|arbitrat\w+\s+(?:in|at|before|under)\s+"
                   r"([^,.;]+)|提交\s*(.{2,30}?(?:人民法院|仲裁委员会))", re.I)


def normalise(text: str) -> str:
    """OCR/layout spacing out: no spaces inside Chinese text, single spaces elsewhere."""
    return _CJK_SPACE.sub("", re.sub(r"\s+", " ", text)).strip()


@dataclass
class Structure:
    clauses: list[Clause] = field(default_factory=list)
    parties: list[Party] = field(default_factory=list)
    effective_date: str | None = None
    dates: list[str] = field(default_factory=list)
    term: str | None = None
    amounts: list[Amount] = field(default_factory=list)
    governing_law: str | None = None
    jurisdiction: str | None = None


def segment(lines: list[Line]) -> list[Clause]:
    """Split lines into clauses at numbered headings; a signature block ends the clause before it; the text
    before the first heading is the preamble (number '')."""
    clauses: list[Clause] = []
    cur: dict | None = None

    def close() -> None:
        if cur and cur["lines"]:
            text = normalise(" ".join(ln.text for ln in cur["lines"]))
            first = cur["lines"][0]
            on_page = [ln.box for ln in cur["lines"] if ln.page == first.page]
            clauses.append(Clause(index=len(clauses), number=cur["number"], heading=_heading(cur["rest"]),
                                  text=text, page=first.page, box=_union(on_page)))

    in_block = False
    for ln in lines:
        text = ln.text.strip()
        if not text:
            continue
        start = _start(normalise(text))
        if start:
            close()
            cur = {"number": normalise(start[0]), "rest": start[1], "lines": [ln]}
        elif BLOCK_END.search(normalise(text)):
            close()
            cur, in_block = None, True
        elif cur is None:
            if not clauses and not in_block:  # the preamble, before the first heading
                cur = {"number": "", "rest": "", "lines": [ln]}
        else:
            cur["lines"].append(ln)
    close()
    return clauses


def _start(text: str) -> tuple[str, str] | None:
    for pat in CLAUSE_START:
        m = pat.match(text)
        if m and not DATE.match(text):
            return m.group(1), m.group(2)
    return None


def _heading(rest: str) -> str:
    rest = rest.strip()
    m = re.match(r"^([A-Z][A-Za-z ,&/-]{2,60}?)\.\s", rest + " ")
    if m and len(m.group(1).split()) <= 6:
        return m.group(1)
    m = re.match(r"^([\u4e00-\u9fff]{2,8})\s", rest)
    return m.group(1) if m else ""


def _union(boxes: list[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def extract(lines: list[Line], clauses: list[Clause]) -> Structure:
    """Parties, dates, term, amounts, governing law from the lines and clauses."""
    st = Structure(clauses=clauses)
    full = "\n".join(normalise(ln.text) for ln in lines)
    flat = normalise(" ".join(ln.text for ln in lines))
    preamble = " ".join(c.text for c in clauses if not c.number) or full[:1500]
    seen: set[str] = set()
    for m in PARTY_EN.finditer(re.sub(r"\s+", " ", preamble)):
        name, role = m.group(1).strip(" ,"), m.group(2).strip()
        name = re.split(r"\b(?:between|and|by|with)\s+", name)[-1].strip(" ,")
        if role not in seen:
            st.parties.append(Party(role=role, name=name))
            seen.add(role)
    for ln in lines:
        m = PARTY_ROLE.match(normalise(ln.text))
        if m and m.group(1) not in seen and not re.search(r"_{3,}", m.group(2)):
            st.parties.append(Party(role=m.group(1), name=m.group(2).strip()))
            seen.add(m.group(1))
    st.dates = [re.sub(r"\s+", "", d) if "年" in d else d for d in DATE.findall(full)]
    m = re.search(r"(?:Effective Date|made on|dated|签订日期|签署日期|生效日期)[^\n]{0,40}?(" + DATE.pattern + ")",
                  full, re.I)
    pre_dates = DATE.findall(preamble)
    st.effective_date = (m.group(1) if m else (pre_dates[0] if pre_dates else None))
    if st.effective_date and "年" in st.effective_date:
        st.effective_date = re.sub(r"\s+", "", st.effective_date)
    m = TERM.search(flat)
    if m:
        st.term = (m.group(1) or m.group(2)).strip()
    for c in clauses:
        st.amounts.extend(_amounts(c))
    m = LAW.search(flat)
    if m:
        st.governing_law = (m.group(1) or m.group(2)).strip()
    m = FORUM.search(flat)
    if m:
        st.jurisdiction = next(g for g in m.groups() if g).strip()
    return st


def _amounts(c: Clause) -> list[Amount]:
    out: list[Amount] = []
    for m in AMOUNT_ZH.finditer(c.text):
        value = parse_figure(m.group(2))
        out.append(Amount(text=m.group(0), value=value, currency="CNY", page=c.page,
                          words_value=zh_words_to_number(m.group(1))))
    zh_spans = [m.span() for m in AMOUNT_ZH.finditer(c.text)]
    for m in AMOUNT_EN.finditer(c.text):
        if any(a <= m.start() < b for a, b in zh_spans):
            continue
        value = parse_figure(m.group(2))
        words = en_words_to_number(m.group(3)) if m.group(3) else None
        out.append(Amount(text=m.group(0), value=value, currency=CURRENCIES[m.group(1)], page=c.page,
                          words_value=words))
    return out
