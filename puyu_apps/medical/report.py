"""Prompt building from the measurements, parsing of the LLM's FINDINGS / IMPRESSION, and the check of the text
against the deterministic Lung-RADS category (a disagreeing text is flagged and corrected)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .lungrads import correct_text, mentioned_categories

TYPE_ZH = {"solid": "实性", "part-solid": "部分实性", "ground-glass": "磨玻璃"}
SIDE_ZH = {"right": "右", "left": "左"}


def nodule_sentence(i: int, n: dict, language: str = "en") -> str:
    if language == "zh":
        solid = f"，实性成分 {n['solid_diameter_mm']:.1f} mm" if n["type"] == "part-solid" else ""
        lobe = LOBE_ZH.get(n["lobe"]) or f"{SIDE_ZH[n['side']]}肺 {n['lobe']}"
        return (f"结节{i}：{lobe}，{TYPE_ZH[n['type']]}结节，平均直径 "
                f"{n['mean_diameter_mm']:.1f} mm{solid}，体积 {n['volume_mm3']:.0f} mm³，平均 CT 值 {n['mean_hu']:.0f} HU，"
                f"层面 {n['slices'][0]}-{n['slices'][1]}，Lung-RADS {n['category']}。")
    solid = f", solid component {n['solid_diameter_mm']:.1f} mm" if n["type"] == "part-solid" else ""
    return (f"Nodule {i}: {n['type']} nodule in the {n['lobe']}, mean diameter {n['mean_diameter_mm']:.1f} mm"
            f"{solid}, volume {n['volume_mm3']:.0f} mm3, mean {n['mean_hu']:.0f} HU, slices "
            f"{n['slices'][0]}-{n['slices'][1]} (Lung-RADS {n['category']}).")


def measurements_text(nodules: list[dict], lung_volume_ml: float | None, evaluable: bool,
                      language: str = "en") -> str:
    lines = [nodule_sentence(i, n, language) for i, n in enumerate(nodules, 1)]
    if language == "zh":
        if not evaluable:
            lines.append("单层图像：无法进行容积结节评估，需要完整的CT序列。")
        elif not nodules:
            lines.append("未发现肺结节。")
        if lung_volume_ml is not None:
            lines.append(f"扫描范围内肺容积 {lung_volume_ml:.0f} mL。")
    else:
        if not evaluable:
            lines.append("Single slice only: volumetric nodule findings need a complete CT series.")
        elif not nodules:
            lines.append("No lung nodule found.")
        if lung_volume_ml is not None:
            lines.append(f"Lung volume in the scanned range: {lung_volume_ml:.0f} mL.")
    return "\n".join(f"- {x}" for x in lines)


#: Chinese lobe names (the short radiology forms); the checker reads these, the long forms (右肺上叶) and English
LOBE_ZH = {"right upper lobe": "右上叶", "right middle lobe": "右中叶", "right lower lobe": "右下叶",
           "left upper lobe": "左上叶", "left lower lobe": "左下叶"}
#: follow-up per category, short enough for the prompt and the impression (no diagnosis or treatment words:
#: the impression check rejects those)
FOLLOW_UP = {
    "en": {"0": "a complete CT series is needed", "1": "annual screening in 12 months",
           "2": "annual screening in 12 months", "3": "low-dose CT in 6 months", "4A": "low-dose CT in 3 months",
           "4B": "PET/CT may be considered"},
    "zh": {"0": "需要完整CT序列", "1": "12个月后年度筛查", "2": "12个月后年度筛查", "3": "6个月后低剂量CT复查",
           "4A": "3个月后低剂量CT复查", "4B": "可考虑PET/CT"},
}
#: encoder size bins, compact (index = ``features.SIZE_BINS`` index)
_BIN_SHORT = ("<6 mm", "6-8 mm", "8-15 mm", ">=15 mm")


def lobe_name(lobe: str, language: str = "en") -> str:
    return LOBE_ZH.get(lobe, lobe) if language == "zh" else lobe


def type_name(kind: str, language: str = "en") -> str:
    return TYPE_ZH[kind] if language == "zh" else kind


def prompt_nodule_line(i: int, n: dict, language: str = "en") -> str:
    """One nodule as the prompt gives it: what the report states (size, solid part, type, lobe). Volume and HU
    stay in the result's measurement table: the prompt is kept short for small models."""
    if language == "zh":
        solid = f"，实性 {n['solid_diameter_mm']:.1f} mm" if n["type"] == "part-solid" else ""
        return f"{i}. {lobe_name(n['lobe'], 'zh')}，{TYPE_ZH[n['type']]}，{n['mean_diameter_mm']:.1f} mm{solid}"
    solid = f", solid {n['solid_diameter_mm']:.1f} mm" if n["type"] == "part-solid" else ""
    return f"{i}. {n['type']}, {n['lobe']}, {n['mean_diameter_mm']:.1f} mm{solid}"


def prompt_measurements(nodules: list[dict], evaluable: bool, language: str = "en") -> str:
    """The nodules as the prompt lists them. The lung volume is left out: the report states only nodules (the
    check drops findings sentences without a nodule size) and the result carries the volume anyway."""
    zh = language == "zh"
    if not evaluable:
        lines = ["结节：单层图像，无法评估" if zh else "Nodules: not evaluable (single slice)"]
    elif not nodules:
        lines = ["结节：无" if zh else "Nodules: none"]
    else:
        lines = ["结节：" if zh else "Nodules:"] + [prompt_nodule_line(i, n, language) for i, n in enumerate(nodules, 1)]
    return "\n".join(lines)


def retrieved_text(hits: list, language: str = "en") -> str:
    """The encoder's phrases as the prompt gives them, in nodule order (``part-solid 6-8 mm, solid <6 mm``).
    ``hits``: dicts ``{"nodule", "kind", "bin", "score"}`` (see :meth:`features.PhraseRetriever.hits`) or ready
    strings. Scores stay in the result's ``retrieved_phrases``: the prompt is kept short."""
    if not hits:
        return "无" if language == "zh" else "none"
    out = [h if isinstance(h, str) else f"{type_name(h['kind'], language)} {_BIN_SHORT[h['bin']]}" for h in hits]
    return "，".join(out) if language == "zh" else ", ".join(out)


def report_messages(nodules: list[dict], evaluable: bool = True, history: str = "", language: str = "en",
                    retrieved: list | None = None, template_dir: Path | None = None) -> tuple[str, str]:
    """(system, user): the exact messages the LLM gets for these measurements. The pipeline and the
    fine-tuning data generator (``training_data.py``) both call this, so the adapter trains on what it sees.

    ``nodules``: measurement dicts (``type``, ``mean_diameter_mm``, ``solid_diameter_mm``, ``lobe``; ``category``
    is computed when missing), largest first; ``retrieved``: the encoder's hits (:func:`retrieved_text`)."""
    from .lungrads import nodule_category, study_category

    if language not in ("en", "zh"):
        raise ValueError(f"language must be 'en' or 'zh', got {language!r}")
    if template_dir is None:
        from ..paths import vertical_dir

        template_dir = vertical_dir("medical") / "prompts"
    cats = [n.get("category") or nodule_category(n["type"], n["mean_diameter_mm"], n["solid_diameter_mm"])
            for n in nodules]
    category = study_category(cats, evaluable)
    system = (template_dir / f"system_{language}.txt").read_text(encoding="utf-8").strip()
    user = (template_dir / f"user_{language}.txt").read_text(encoding="utf-8").format(
        history=" ".join(history.split()) or ("无" if language == "zh" else "none"),
        measurements=prompt_measurements(nodules, evaluable, language),
        category=category, management=FOLLOW_UP[language][category],
        retrieved=retrieved_text(retrieved or [], language))
    return system, user.strip()


_SPLIT = re.compile(r"\**\s*(impression|印象)\s*\**\s*[:：]", re.I)
_FIND = re.compile(r"^\s*\**\s*(findings|所见)\s*\**\s*[:：]\s*", re.I)


def parse_sections(text: str) -> tuple[str, str]:
    """(findings, impression) from the model's text; impression is empty when the model wrote none."""
    parts = _SPLIT.split(text, maxsplit=1)
    findings = _FIND.sub("", parts[0]).strip()
    impression = parts[2].strip() if len(parts) == 3 else ""
    return findings, impression


def check_report(findings: str, impression: str, nodules: list[dict], category: str,
                 evaluable: bool) -> tuple[str, str, list[str], dict]:
    """Compare the text with the measurements. Returns corrected findings/impression, flags and a summary."""
    flags: list[str] = []
    stated = mentioned_categories(findings + "\n" + impression)
    impression_fixed, wrong = correct_text(impression, category)
    # the findings may give each nodule its own category; a category that fits no nodule and not the study is
    # wrong and becomes the study's
    allowed = {category} | {n["category"] for n in nodules}
    findings_fixed = _replace_categories(findings, category, keep=allowed)
    wrong += [c for c in mentioned_categories(findings) if c not in allowed]
    if wrong:
        flags.append(f"the text stated Lung-RADS {', '.join(sorted(set(wrong)))} but the measurements give "
                     f"{category}: corrected")
    if not mentioned_categories(impression):
        flags.append(f"the impression stated no Lung-RADS category: {category} added")
    measured = [n["mean_diameter_mm"] for n in nodules] + [n["solid_diameter_mm"] for n in nodules]
    sizes = [float(x) for x in re.findall(r"(\d+(?:\.\d+)?)\s*(?:mm|毫米)\b", findings)]
    off = [s for s in sizes if not any(abs(s - m) <= 1.0 for m in measured)]
    if off:
        flags.append(f"the text gives sizes not among the measurements: {', '.join(f'{s:g} mm' for s in off)}")
    if not nodules and evaluable and any(
            re.search(r"\bnodules? (?:is|are|was|were) (?:seen|present|noted)\b", s, re.I) and not _NONE.search(s)
            for s in split_sentences(findings)):
        flags.append("the text describes a nodule but none was measured")
    return findings_fixed, impression_fixed, flags, {"stated": stated, "computed": category,
                                                      "agreed": not wrong and bool(stated), "corrected": bool(wrong)}


_UNSUPPORTED = re.compile(
    r"diagnos|biops|resect|surg|chemo|radiation|radiother|cure|specimen|microscop|metasta|patholog|x-ray|"
    r"incision|treat|weigh|family|malignan|cancer|tumou?r|grade|grading|score|surviv|likelihood|classification|"
    r"risk|prognos|确诊|诊断|手术|化疗|放疗|病理|活检|穿刺|切除|治疗|恶性|癌|转移|肿瘤|风险", re.I)
_LOBE = re.compile(r"(right|left)\s+(upper|middle|lower)\s+lobe", re.I)
_LOBE_ZH = re.compile(r"([右左])肺?([上中下])叶")
_ZH_LOBE_EN = {"右": "right", "左": "left", "上": "upper", "中": "middle", "下": "lower"}
#: a statement that no nodule was found / the study cannot be assessed (kept only when the measurements agree)
_NONE = re.compile(r"\bno\s+(?:\w+[\s-]+){0,3}nodules?\b|(?:未见|未发现|无)[^。；;,，]{0,6}结节", re.I)
_NOT_EVALUABLE = re.compile(r"single slice|not evaluable|complete (?:chest )?CT series|单层|无法评估|完整的?胸部?CT序列",
                            re.I)
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:mm|毫米)(?![³3²2])")


def split_sentences(text: str) -> list[str]:
    """Sentences of a findings text, English (a stop and a space) and Chinese (。！？, no space needed)."""
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|(?<=[。！？；])|\n+", text) if s and s.strip()]


def sentence_lobes(sent: str) -> set[str]:
    """The lobes a sentence names, as English lobe names (Chinese names mapped)."""
    return ({f"{a} {b} lobe".lower() for a, b in _LOBE.findall(sent)}
            | {f"{_ZH_LOBE_EN[a]} {_ZH_LOBE_EN[b]} lobe" for a, b in _LOBE_ZH.findall(sent)})


def sentence_sizes(sent: str) -> list[float]:
    """Sizes in mm a sentence gives (volumes such as ``mm3`` / ``mm³`` excluded)."""
    return [float(x) for x in _SIZE.findall(sent)]


def _types(sent: str) -> set[str]:
    out = set()
    if re.search(r"ground[\s-]*glass|\bGG[NO]\b|磨玻璃", sent, re.I):
        out.add("ground-glass")
    if re.search(r"part[\s-]*solid|sub[\s-]*solid|部分实性", sent, re.I):
        out.add("part-solid")
    if re.search(r"(?<!part-)(?<!part )(?<!sub)\bsolid\b(?!\s+component)|(?<!部分)实性", sent, re.I):
        out.add("solid")
    return out


def sentence_ok(sent: str, nodules: list[dict], evaluable: bool = True) -> bool:
    """Whether one findings sentence agrees with the measurements (see :func:`filter_findings`)."""
    if _UNSUPPORTED.search(sent):
        return False
    sizes = sentence_sizes(sent)
    if not sizes:
        if not evaluable:
            return bool(_NOT_EVALUABLE.search(sent) or _NONE.search(sent))
        return not nodules and bool(_NONE.search(sent))
    lobes = sentence_lobes(sent)
    types = _types(sent)
    return all(
        any(abs(x - n["mean_diameter_mm"]) <= 1.0 and (not lobes or lobes == {n["lobe"].lower()})
            and (not types or types <= {n["type"], "solid"} if n["type"] == "part-solid" else
                 not types or types == {n["type"]}) for n in nodules)
        or any(abs(x - n["solid_diameter_mm"]) <= 1.0 for n in nodules if n["type"] == "part-solid")
        for x in sizes)


def filter_findings(findings: str, nodules: list[dict], evaluable: bool = True) -> tuple[str, int]:
    """Keep only the model's sentences that describe a measured nodule consistently (a size within 1 mm of it,
    and its type and lobe when they are named, English or Chinese), or that say no nodule was found when none
    was measured (or that the study is not evaluable when it is not); drop the rest (other sizes or lobes,
    diagnosis, treatment, grading claims). Returns the kept text and the number of sentences dropped."""
    kept, dropped = [], 0
    for sent in split_sentences(findings):
        if sentence_ok(sent, nodules, evaluable):
            kept.append(sent)
        else:
            dropped += 1
    # Chinese sentences follow each other without a space
    text = "".join(x if not i or kept[i - 1][-1] in "。！？；" else " " + x for i, x in enumerate(kept))
    return text, dropped


@dataclass
class Review:
    """The checked report: what the pipeline shows, the flags, and how much of the model's text survived."""

    findings: str
    impression: str
    flags: list[str]
    check: dict
    sentences: int  # findings sentences the model wrote
    kept: int  # of those, kept by the check
    impression_used: bool  # the model's impression was kept (its category possibly corrected)


def review_report(text: str, nodules: list[dict], category: str, evaluable: bool,
                  lung_volume_ml: float | None = None, language: str = "en") -> Review:
    """Check the model's FINDINGS / IMPRESSION against the measurements and fill in what is missing: the
    pipeline's post-processing, also used by the adapter's task scorer."""
    findings, impression = parse_sections(text)
    n_sent = len(split_sentences(findings))
    flags: list[str] = []
    findings, dropped = filter_findings(findings, nodules, evaluable)
    if dropped:
        flags.append(f"{dropped} sentence(s) of the model's findings contradicted or went beyond the "
                     f"measurements (size, lobe, diagnosis or treatment claims) and were removed")
    missing = [(i, n) for i, n in enumerate(nodules, 1)
               if f"{n['mean_diameter_mm']:.1f}" not in findings and f"{n['mean_diameter_mm']:.0f} mm"
               not in findings]
    if not findings.strip():
        findings = measurements_text(nodules, lung_volume_ml, evaluable, language)
        flags.append("no usable findings in the model's text: the measured findings were written in")
    elif missing:
        findings += "\n" + "\n".join(f"- {nodule_sentence(i, n, language)}" for i, n in missing)
        flags.append(f"the model's findings omitted {len(missing)} measured nodule(s): added")
    used = bool(impression.strip()) and not _UNSUPPORTED.search(impression)
    if not used:
        if impression.strip():
            flags.append("the model's impression made claims the measurements do not support: replaced")
        else:
            flags.append("the model wrote no impression: the computed impression was used")
        impression = default_impression(nodules, category, evaluable, language)
    findings, impression, more, check = check_report(findings, impression, nodules, category, evaluable)
    return Review(findings, impression, flags + more, check, n_sent, n_sent - dropped, used)


def default_impression(nodules: list[dict], category: str, evaluable: bool, language: str = "en") -> str:
    from .lungrads import MANAGEMENT

    if language == "zh":
        head = "单层图像，无法评估。" if not evaluable else f"发现{len(nodules)}个肺结节。" if nodules else "未见肺结节。"
        return f"{head} Lung-RADS {category}。"
    if not evaluable:
        head = "Not evaluable from a single slice."
    elif nodules:
        big = nodules[0]
        head = (f"{len(nodules)} pulmonary nodule(s); the largest is a {big['type']} nodule of "
                f"{big['mean_diameter_mm']:.1f} mm in the {big['lobe']}.")
    else:
        head = "No pulmonary nodule."
    return f"{head} {MANAGEMENT[category]} Lung-RADS {category}."


def _replace_categories(text: str, category: str, keep: set[str]) -> str:
    from .lungrads import _MENTION

    def sub(m: re.Match) -> str:
        c = m.group(2).replace(" ", "").upper()
        return m.group(0) if c in keep else f"{m.group(1)}{category}"

    return _MENTION.sub(sub, text)
