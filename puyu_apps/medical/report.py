"""Prompt building from the measurements, parsing of the LLM's FINDINGS / IMPRESSION, and the check of the text
against the deterministic Lung-RADS category (a disagreeing text is flagged and corrected)."""

from __future__ import annotations

import re
from pathlib import Path

from .lungrads import MANAGEMENT, correct_text, mentioned_categories

TYPE_ZH = {"solid": "实性", "part-solid": "部分实性", "ground-glass": "磨玻璃"}
SIDE_ZH = {"right": "右", "left": "左"}


def nodule_sentence(i: int, n: dict, language: str = "en") -> str:
    if language == "zh":
        solid = f"，实性成分 {n['solid_diameter_mm']:.1f} mm" if n["type"] == "part-solid" else ""
        return (f"结节{i}：{SIDE_ZH[n['side']]}肺 {n['lobe']}，{TYPE_ZH[n['type']]}结节，平均直径 "
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


def build_messages(template_dir: Path, language: str, history: str, nodules: list[dict],
                   lung_volume_ml: float | None, category: str, evaluable: bool,
                   retrieved: list[str]) -> tuple[str, str]:
    system = (template_dir / f"system_{language}.txt").read_text(encoding="utf-8").strip()
    user = (template_dir / f"user_{language}.txt").read_text(encoding="utf-8").format(
        history=history.strip() or ("无" if language == "zh" else "none given"),
        measurements=measurements_text(nodules, lung_volume_ml, evaluable, language),
        category=category, management=MANAGEMENT[category],
        retrieved="; ".join(retrieved) if retrieved else ("无" if language == "zh" else "none"))
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
    if not nodules and evaluable and re.search(r"\bnodules? (?:is|are|was|were) (?:seen|present|noted)\b",
                                                findings, re.I):
        flags.append("the text describes a nodule but none was measured")
    return findings_fixed, impression_fixed, flags, {"stated": stated, "computed": category,
                                                      "agreed": not wrong and bool(stated), "corrected": bool(wrong)}


_UNSUPPORTED = re.compile(
    r"diagnos|biops|resect|surg|chemo|radiation|radiother|cure|specimen|microscop|metasta|patholog|x-ray|"
    r"incision|treat|weigh|family|malignan|cancer|tumou?r|grade|grading|score|surviv|likelihood|classification|"
    r"risk|prognos|确诊|手术|化疗|病理", re.I)
_LOBE = re.compile(r"(right|left)\s+(upper|middle|lower)\s+lobe", re.I)


def _types(sent: str) -> set[str]:
    out = set()
    if re.search(r"ground[\s-]*glass|\bGG[NO]\b|磨玻璃", sent, re.I):
        out.add("ground-glass")
    if re.search(r"part[\s-]*solid|sub[\s-]*solid|部分实性", sent, re.I):
        out.add("part-solid")
    if re.search(r"(?<!part-)(?<!part )(?<!sub)\bsolid\b(?!\s+component)|(?<!部分)实性", sent, re.I):
        out.add("solid")
    return out


def filter_findings(findings: str, nodules: list[dict]) -> tuple[str, int]:
    """Keep only the model's sentences that describe a measured nodule consistently (a size within 1 mm of it,
    and its type and lobe when they are named); drop the rest (other sizes or lobes, diagnosis, treatment,
    grading claims). Returns the kept text and the number of sentences dropped."""
    kept, dropped = [], 0
    for sent in re.split(r"(?<=[.!?。！？])\s+|\n+", findings):
        if not sent.strip():
            continue
        sizes = [float(x) for x in re.findall(r"(\d+(?:\.\d+)?)\s*(?:mm|毫米)", sent)]
        lobes = {f"{a} {b} lobe".lower() for a, b in _LOBE.findall(sent)}
        types = _types(sent)
        ok = bool(sizes) and not _UNSUPPORTED.search(sent) and all(
            any(abs(x - n["mean_diameter_mm"]) <= 1.0 and (not lobes or lobes == {n["lobe"].lower()})
                and (not types or types <= {n["type"], "solid"} if n["type"] == "part-solid" else
                     not types or types == {n["type"]}) for n in nodules)
            or any(abs(x - n["solid_diameter_mm"]) <= 1.0 for n in nodules if n["type"] == "part-solid")
            for x in sizes)
        if ok:
            kept.append(sent.strip())
        else:
            dropped += 1
    return " ".join(kept), dropped


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
