"""Fine-tuning data for the medical LoRA adapter, and its task scorer.

Each row is one structured case (0-4 nodules with size, type, lobe, volume and HU; lung volume; history;
the image encoder's phrases as the pipeline adds them) turned into

* ``system`` / ``instruction``: exactly the messages the pipeline sends for that case (both come from
  :func:`puyu_apps.medical.report.report_messages`), and
* ``output``: the ideal FINDINGS + IMPRESSION, which the pipeline's check keeps whole (sizes, types and lobes of
  the measurements, the Lung-RADS v2022 category of ``lungrads.py``, no diagnosis or treatment words).

``meta`` holds the structured truth the scorer compares a generated report with. English and Chinese
alternate. Everything is synthetic and deterministic for a seed::

    from puyu_apps.medical.training_data import write_splits
    train, held_out = write_splits("data/medical", n_train=3000, n_eval=200, seed=0)
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

from .lungrads import nodule_category, study_category
from .report import (FOLLOW_UP, LOBE_ZH, TYPE_ZH, mentioned_categories, parse_sections, report_messages,
                     review_report, sentence_lobes, sentence_sizes, split_sentences, _types)

LANGS = ("en", "zh")
LOBES = {"right": ("right upper lobe", "right middle lobe", "right lower lobe"),
         "left": ("left upper lobe", "left lower lobe")}
KINDS = ("solid", "part-solid", "ground-glass")
#: how a type's mean HU is drawn (the pipeline calls voxels above -300 HU solid)
HU_RANGE = {"solid": (-60.0, 60.0), "part-solid": (-480.0, -260.0), "ground-glass": (-760.0, -480.0)}
#: encoder size bins (``features.SIZE_BINS``): lower bounds
_BIN_LO = (0.0, 6.0, 8.0, 15.0)

_HISTORY_EN = (
    "{age}-year-old {sex}, current smoker, {py} pack-years.",
    "{age}-year-old {sex}, former smoker ({py} pack-years), quit {quit} years ago.",
    "{age} y, {py} pack-years; annual screening.",
    "Lung cancer screening, baseline. {age}-year-old {sex}.",
    "{age}-year-old {sex}; chronic cough for {months} months; {py} pack-years.",
    "[REDACTED], {age}, former smoker ({py} pack-years).",
    "Screening. COPD. {py} pack-years.",
    "{age}-year-old {sex}, never smoker, family history of lung cancer.",
    "Annual low-dose CT screening.",
)
_HISTORY_ZH = (
    "{age}岁{sex_zh}，吸烟{py}包年。",
    "{age}岁{sex_zh}，既往吸烟{py}包年，已戒烟{quit}年。",
    "肺癌筛查，首次检查。{age}岁。",
    "{age}岁{sex_zh}，咳嗽{months}个月，吸烟{py}包年。",
    "[REDACTED]，{age}岁，吸烟{py}包年。",
    "年度低剂量CT筛查。",
    "{age}岁{sex_zh}，不吸烟，有肺癌家族史。",
    "慢阻肺，吸烟{py}包年。",
)
_COUNT_EN = {2: "Two", 3: "Three", 4: "Four"}
_COUNT_ZH = {2: "两", 3: "三", 4: "四"}


# -- cases ------------------------------------------------------------------------------------------------
def _diameter(rng: random.Random) -> float:
    """3-35 mm, small nodules most common (screening), every Lung-RADS size band represented."""
    u = rng.random()
    if u < 0.35:
        d = rng.uniform(3.0, 6.0)
    elif u < 0.55:
        d = rng.uniform(6.0, 8.0)
    elif u < 0.85:
        d = rng.uniform(8.0, 15.0)
    else:
        d = rng.uniform(15.0, 35.0)
    return round(d, 1)


def sample_nodule(rng: random.Random, slice_mm: float = 1.25, n_slices: int = 240) -> dict[str, Any]:
    """One measured nodule with every field ``measure.py`` gives (the prompt uses type, sizes, lobe, volume,
    HU)."""
    kind = rng.choices(KINDS, weights=(0.5, 0.25, 0.25))[0]
    d = _diameter(rng)
    if kind == "part-solid":
        d = max(d, 5.0)
        solid = round(rng.uniform(2.5, max(2.6, 0.8 * d)), 1)
    elif kind == "solid":
        solid = d
    else:
        solid = 0.0
    ratio = rng.uniform(0.7, 1.0)
    long_ax = round(2 * d / (1 + ratio), 1)
    short_ax = round(2 * d - long_ax, 1)
    volume = round(math.pi / 6 * d ** 3 * rng.uniform(0.75, 1.15), 1)
    lo, hi = HU_RANGE[kind]
    side = "right" if rng.random() < 0.55 else "left"
    lobe = rng.choice(LOBES[side])
    extent = max(1, round(d / slice_mm))
    z0 = rng.randint(5, max(6, n_slices - extent - 5))
    frac = {"solid": rng.uniform(0.85, 1.0), "part-solid": rng.uniform(0.25, 0.75),
            "ground-glass": rng.uniform(0.0, 0.15)}[kind]
    return {
        "type": kind, "mean_diameter_mm": d, "long_axis_mm": long_ax, "short_axis_mm": short_ax,
        "solid_diameter_mm": solid, "volume_mm3": volume, "mean_hu": round(rng.uniform(lo, hi), 1),
        "solid_fraction": round(frac, 2), "slices": [z0, z0 + extent], "key_slice": z0 + extent // 2 - 1,
        "side": side, "lobe": lobe,
        "centre_lps_mm": [round(rng.uniform(-140, -20) if side == "right" else rng.uniform(20, 140), 1),
                          round(rng.uniform(-60, 80), 1), round(rng.uniform(-250, -50), 1)],
        "max_probability": round(rng.uniform(0.8, 1.0), 3),
        "category": nodule_category(kind, d, solid),
    }


def _history(rng: random.Random, lang: str) -> str:
    if rng.random() < 0.3:
        return ""
    sex = rng.choice(("man", "woman"))
    fields = dict(age=rng.randint(50, 80), sex=sex, sex_zh="男性" if sex == "man" else "女性",
                  py=rng.choice((20, 25, 30, 35, 40, 45, 50, 60)), quit=rng.randint(1, 14), months=rng.randint(1, 6))
    return rng.choice(_HISTORY_ZH if lang == "zh" else _HISTORY_EN).format(**fields)


def _hits(rng: random.Random, nodules: list[dict]) -> list[dict[str, Any]]:
    """The encoder's best phrase per nodule as the pipeline adds it: right about half the time (held-out
    top-1 0.44), otherwise a neighbouring size bin or another type; no phrases when the encoder is off."""
    if not nodules or rng.random() < 0.15:
        return []
    out = []
    for i, n in enumerate(nodules, 1):
        kind = n["type"]
        b = max(j for j, lo in enumerate(_BIN_LO) if n["mean_diameter_mm"] >= lo)
        score = rng.uniform(0.45, 0.9)
        u = rng.random()
        if u > 0.5:
            b = min(3, max(0, b + rng.choice((-1, 1))))
            score -= 0.1
        if u > 0.8:
            kind = rng.choice([k for k in KINDS if k != kind])
        out.append({"nodule": i, "kind": kind, "bin": b, "score": round(score, 2)})
    return out


def sample_case(rng: random.Random, language: str) -> dict[str, Any]:
    """A structured case as the pipeline has it just before the prompt."""
    history = _history(rng, language)
    if rng.random() < 0.04:  # a single slice: no volumetric assessment, Lung-RADS 0
        return {"language": language, "history": history, "evaluable": False, "nodules": [],
                "lung_volume_ml": None, "retrieved": [], "lung_rads": "0"}
    n = rng.choices((0, 1, 2, 3, 4), weights=(0.15, 0.38, 0.25, 0.14, 0.08))[0]
    slice_mm = rng.choice((0.625, 1.0, 1.25, 2.0, 2.5))
    n_slices = int(rng.uniform(250, 330) / slice_mm)
    nodules = sorted((sample_nodule(rng, slice_mm, n_slices) for _ in range(n)),
                     key=lambda x: -x["mean_diameter_mm"])
    for i, x in enumerate(nodules, 1):
        x["index"] = i
    lung = round(rng.uniform(3000, 7000) if rng.random() < 0.85 else rng.uniform(600, 3000), 1)
    return {"language": language, "history": history, "evaluable": True, "nodules": nodules,
            "lung_volume_ml": lung, "retrieved": _hits(rng, nodules),
            "lung_rads": study_category([x["category"] for x in nodules], True)}


def case_messages(case: dict[str, Any]) -> tuple[str, str]:
    """(system, user) for a case: the pipeline's own prompt builder."""
    return report_messages(case["nodules"], case["evaluable"], case["history"], case["language"], case["retrieved"])


# -- ideal report ------------------------------------------------------------------------------------------
def _sentence_en(style: int, i: int, n: dict, solid_style: int) -> str:
    d, t, lobe = f"{n['mean_diameter_mm']:.1f}", n["type"], n["lobe"]
    s = ""
    if t == "part-solid":
        s = (f", solid part {n['solid_diameter_mm']:.1f} mm" if solid_style == 0 else
             f" with a {n['solid_diameter_mm']:.1f} mm solid component")
    if style == 0:
        return f"Nodule {i}: {t} nodule in the {lobe}, {d} mm{s}."
    if style == 1:
        return f"{t.capitalize()} nodule of {d} mm in the {lobe}{s}."
    if style == 2:
        return f"{d} mm {t} nodule in the {lobe}{s}."
    return f"{t.capitalize()} nodule, {lobe}, {d} mm{s}."


def _sentence_zh(style: int, n: dict, solid_style: int) -> str:
    d, t, lobe = f"{n['mean_diameter_mm']:.1f}", TYPE_ZH[n["type"]], LOBE_ZH[n["lobe"]]
    s = ""
    if n["type"] == "part-solid":
        s = f"，实性 {n['solid_diameter_mm']:.1f} mm" if solid_style == 0 else \
            f"，实性成分 {n['solid_diameter_mm']:.1f} mm"
    if style == 0:
        return f"{lobe}{t}结节，{d} mm{s}。"
    if style == 1:
        return f"{lobe}见{t}结节，{d} mm{s}。"
    return f"{lobe}{t}结节 {d} mm{s}。"


def ideal_report(case: dict[str, Any], rng: random.Random) -> str:
    """FINDINGS + IMPRESSION that the pipeline's check accepts whole, in the case's language: one sentence per
    nodule (size, solid part, type, lobe), an impression naming the nodule that sets the category (or the
    count), the follow-up and the Lung-RADS category. Short and formulaic, a few wordings."""
    nodules, cat, lang = case["nodules"], case["lung_rads"], case["language"]
    follow = FOLLOW_UP[lang][cat]
    solid_style = rng.randrange(2)
    if lang == "zh":
        if not case["evaluable"]:
            findings = rng.choice(("单层图像，无法评估结节。", "仅单层图像，无法评估结节。"))
            impression = f"无法评估，{follow}。Lung-RADS {cat}。"
        elif not nodules:
            findings = rng.choice(("未见肺结节。", "双肺未见结节。", "未发现肺结节。"))
            impression = f"未见肺结节，{follow}。Lung-RADS {cat}。"
        else:
            style = rng.randrange(3)
            findings = "".join(_sentence_zh(style, n, solid_style) for n in nodules)
            if len(nodules) == 1:
                head = rng.choice(("单发肺结节", "1个肺结节"))
            else:
                head = f"{_COUNT_ZH[len(nodules)] if rng.random() < 0.5 else len(nodules)}个肺结节"
            impression = f"{head}，{follow}。Lung-RADS {cat}。"
        return f"所见：{findings}\n印象：{impression}"
    if not case["evaluable"]:
        findings = rng.choice(("Single slice only: nodules are not evaluable.",
                               "Single slice only; nodules cannot be assessed."))
        impression = f"Not evaluable; {follow}. Lung-RADS {cat}."
    elif not nodules:
        findings = rng.choice(("No pulmonary nodule.", "No lung nodules.", "No pulmonary nodules seen."))
        impression = f"No pulmonary nodule; {follow}. Lung-RADS {cat}."
    else:
        style = rng.randrange(4)
        findings = " ".join(_sentence_en(style, i, n, solid_style) for i, n in enumerate(nodules, 1))
        if len(nodules) == 1:
            k = nodules[0]
            head = f"{k['type'].capitalize()} nodule of {k['mean_diameter_mm']:.1f} mm in the {k['lobe']}"
        else:
            head = f"{_COUNT_EN[len(nodules)] if rng.random() < 0.5 else len(nodules)} pulmonary nodules"
        impression = f"{head}; {follow}. Lung-RADS {cat}."
    return f"FINDINGS: {findings}\nIMPRESSION: {impression}"


_META_KEYS = ("type", "mean_diameter_mm", "solid_diameter_mm", "volume_mm3", "mean_hu", "slices", "side",
              "lobe", "category")


def case_meta(case: dict[str, Any]) -> dict[str, Any]:
    """The structured truth the scorer uses, and enough of the case to rebuild its prompt."""
    return {"lung_rads": case["lung_rads"], "evaluable": case["evaluable"], "n_nodules": len(case["nodules"]),
            "nodules": [{k: n[k] for k in _META_KEYS} for n in case["nodules"]],
            "lung_volume_ml": case["lung_volume_ml"], "history": case["history"], "retrieved": case["retrieved"]}


def meta_case(meta: dict[str, Any], language: str) -> dict[str, Any]:
    """The case back from a row's ``meta`` (for :func:`case_messages`)."""
    return {"language": language, "history": meta["history"], "evaluable": meta["evaluable"],
            "nodules": meta["nodules"], "lung_volume_ml": meta["lung_volume_ml"],
            "retrieved": meta["retrieved"], "lung_rads": meta["lung_rads"]}


# -- rows and splits ---------------------------------------------------------------------------------------
def _rows(n: int, rng: random.Random, langs: tuple[str, ...], prefix: str) -> list[dict[str, Any]]:
    rows = []
    for k in range(n):
        lang = langs[k % len(langs)]
        case = sample_case(rng, lang)
        system, user = case_messages(case)
        rows.append({"id": f"{prefix}-{k:05d}-{lang}", "lang": lang, "system": system, "instruction": user,
                     "output": ideal_report(case, rng), "meta": case_meta(case)})
    return rows


def make_examples(n: int, seed: int, langs: tuple[str, ...] = LANGS) -> list[dict[str, Any]]:
    """``n`` rows in the fine-tuning JSONL schema, languages alternating; deterministic for ``seed``."""
    langs = tuple(langs)
    if not langs or any(x not in LANGS for x in langs):
        raise ValueError(f"langs must be a non-empty subset of {LANGS}, got {langs!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return _rows(n, random.Random(f"medical-train-{seed}"), langs, f"medical-{seed}")


def write_splits(out_dir: str | Path, n_train: int = 3000, n_eval: int = 200,
                 seed: int = 0) -> tuple[Path, Path]:
    """``train.jsonl`` and the held-out ``eval.jsonl``: half English, half Chinese. The evaluation cases come
    from their own random stream, and any whose prompt also occurs in train is replaced."""
    from ..finetune.data import write_jsonl

    if n_train < 1 or n_eval < 1:
        raise ValueError(f"n_train and n_eval must be >= 1, got {n_train}, {n_eval}")
    train = make_examples(n_train, seed)
    seen = {r["instruction"] for r in train}
    rng = random.Random(f"medical-eval-{seed}")
    held: list[dict[str, Any]] = []
    k = 0
    while len(held) < n_eval:
        if k > 50 * n_eval + 1000:
            raise RuntimeError("could not draw enough held-out cases distinct from train")
        row = _rows(1, rng, (LANGS[len(held) % 2],), "x")[0]
        k += 1
        if row["instruction"] in seen:
            continue
        seen.add(row["instruction"])
        row["id"] = f"medical-eval-{seed}-{len(held):05d}-{row['lang']}"
        held.append(row)
    out = Path(out_dir)
    train_path, eval_path = out / "train.jsonl", out / "eval.jsonl"
    write_jsonl(train_path, train)
    write_jsonl(eval_path, held)
    return train_path, eval_path


# -- scoring ----------------------------------------------------------------------------------------------
def _stated_category(text: str) -> str:
    """The Lung-RADS category a report states: the impression's last, else the text's last, else "none"."""
    _, impression = parse_sections(text)
    cats = mentioned_categories(impression) or mentioned_categories(text)
    return cats[-1] if cats else "none"


def _nodule_stated(n: dict, sentences: list[tuple[list[float], set[str], set[str]]]) -> bool:
    for sizes, lobes, types in sentences:
        if not any(abs(x - n["mean_diameter_mm"]) <= 1.0 for x in sizes):
            continue
        if lobes != {n["lobe"]}:
            continue
        if n["type"] == "solid":
            ok = "solid" in types and not types & {"part-solid", "ground-glass"}
        else:
            ok = n["type"] in types
        if ok:
            return True
    return False


def score(example: Any, text: str) -> dict[str, Any]:
    """Task scores of one generated report against the example's ``meta`` (floats are averaged by
    ``puyu eval``; the ``gold:``/``pred:`` pair becomes ``lung_rads_macro_f1``):

    * ``lung_rads_agreement``: the stated category (impression first) equals the computed one;
    * ``field_accuracy``: nodules stated with the right size (within 1 mm), type and lobe in one sentence, over
      the larger of the measured nodules and the sentences giving a size (made-up nodules count against it);
      with no nodule, 1.0 when the text gives no size;
    * ``accepted_by_checker``: share of the model's findings sentences plus its impression that the pipeline's
      check keeps unchanged (the impression must also state the right category);
    * ``fully_accepted``: 1.0 when the check raises no flag at all.
    """
    meta = example.meta if hasattr(example, "meta") else example["meta"]
    lang = getattr(example, "lang", None) or (example.get("lang", "en") if isinstance(example, dict) else "en")
    meta = meta or {}
    nodules = meta.get("nodules", [])
    gold = str(meta.get("lung_rads", ""))
    evaluable = bool(meta.get("evaluable", True))
    pred = _stated_category(text)
    findings, impression = parse_sections(text)
    sents = [(sentence_sizes(s), sentence_lobes(s), _types(s)) for s in split_sentences(findings)]
    sized = [s for s in sents if s[0]]
    if nodules:
        right = sum(_nodule_stated(n, sized) for n in nodules)
        field = right / max(len(nodules), len(sized))
    else:
        field = 0.0 if sized else 1.0
    review = review_report(text, nodules, gold, evaluable, meta.get("lung_volume_ml"), lang)
    impression_ok = review.impression_used and mentioned_categories(impression)[-1:] == [gold]
    accepted = (review.kept + impression_ok) / (review.sentences + 1)
    return {"lung_rads_agreement": float(pred == gold), "field_accuracy": float(field),
            "accepted_by_checker": float(accepted), "fully_accepted": float(not review.flags),
            "gold:lung_rads": gold, "pred:lung_rads": pred}
