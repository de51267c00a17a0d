"""The medical adapter's training data (structured cases -> ideal report) and task scorer: deterministic,
loadable, held-out split disjoint, outputs the pipeline's check keeps whole, prompts identical to the pipeline's,
token lengths bounded, scores high on the gold text and low on wrong text."""

from __future__ import annotations

import statistics
from types import SimpleNamespace

import numpy as np
import pytest

from puyu_apps.finetune.data import Example, load_jsonl
from puyu_apps.medical import MedicalReportPipeline
from puyu_apps.medical.lungrads import nodule_category, study_category
from puyu_apps.medical.report import review_report
from puyu_apps.medical.training_data import case_messages, make_examples, meta_case, score, write_splits


@pytest.fixture(scope="module")
def rows():
    return make_examples(400, seed=0)


def _example(row: dict) -> Example:
    return Example(row["instruction"], "", row["output"], row["lang"], row["meta"], row["system"])


def test_deterministic_and_both_languages(rows):
    assert make_examples(30, seed=5) == make_examples(30, seed=5)
    assert make_examples(30, seed=5) != make_examples(30, seed=6)
    assert rows[:30] == make_examples(30, seed=0)
    langs = [r["lang"] for r in rows]
    assert langs.count("en") == langs.count("zh") == 200
    assert [r["lang"] for r in make_examples(6, 0, langs=("zh",))] == ["zh"] * 6
    assert len({r["id"] for r in rows}) == len(rows)
    assert sum("FINDINGS:" in r["output"] for r in rows if r["lang"] == "en") == 200
    assert sum(r["output"].startswith("所见：") for r in rows if r["lang"] == "zh") == 200
    with pytest.raises(ValueError, match="langs"):
        make_examples(3, 0, langs=("fr",))


def test_cases_cover_the_ranges(rows):
    counts = {r["meta"]["n_nodules"] for r in rows}
    assert counts == {0, 1, 2, 3, 4}
    assert {r["meta"]["lung_rads"] for r in rows} == {"0", "1", "2", "3", "4A", "4B"}
    nods = [n for r in rows for n in r["meta"]["nodules"]]
    assert {n["type"] for n in nods} == {"solid", "part-solid", "ground-glass"}
    assert len({n["lobe"] for n in nods}) == 5
    assert 3.0 <= min(n["mean_diameter_mm"] for n in nods) and max(n["mean_diameter_mm"] for n in nods) <= 35.0
    assert any(r["meta"]["retrieved"] for r in rows) and any(not r["meta"]["retrieved"] for r in rows)
    assert any(r["meta"]["history"] for r in rows) and any(not r["meta"]["history"] for r in rows)
    for r in rows:  # the category is lungrads.py's
        m = r["meta"]
        cats = [nodule_category(n["type"], n["mean_diameter_mm"], n["solid_diameter_mm"]) for n in m["nodules"]]
        assert m["lung_rads"] == study_category(cats, m["evaluable"])


def test_checker_keeps_every_gold_report_whole(rows):
    for r in rows:
        m = r["meta"]
        rv = review_report(r["output"], m["nodules"], m["lung_rads"], m["evaluable"], m["lung_volume_ml"],
                           r["lang"])
        assert rv.flags == [] and rv.kept == rv.sentences >= 1 and rv.impression_used, (r["output"], rv.flags)
        assert rv.check["agreed"] and f"Lung-RADS {m['lung_rads']}" in r["output"]


def test_splits_load_and_are_disjoint(tmp_path):
    train_path, eval_path = write_splits(tmp_path, n_train=300, n_eval=60, seed=0)
    assert (train_path.name, eval_path.name) == ("train.jsonl", "eval.jsonl")
    train, held = load_jsonl(train_path), load_jsonl(eval_path)
    assert len(train) == 300 and len(held) == 60
    assert not {e.instruction for e in train} & {e.instruction for e in held}
    assert len({e.instruction for e in held}) == 60
    for part in (train, held):
        langs = [e.lang for e in part]
        assert langs.count("en") == langs.count("zh")
        assert all(e.system and e.meta and "lung_rads" in e.meta for e in part)
    assert write_splits(tmp_path / "again", n_train=300, n_eval=60, seed=0)[1].read_bytes() == \
        eval_path.read_bytes()
    # the pipeline's hook writes the same files
    paths = MedicalReportPipeline.make_training_data(tmp_path / "hook", n_train=300, n_eval=60, seed=0)
    assert paths[0].read_bytes() == train_path.read_bytes()


def _tokenizer():
    from transformers import AutoTokenizer

    from puyu_apps.core import DEFAULT_MODEL
    from puyu_apps.core.loading import convert_gguf
    from puyu_apps.core.registry import get_entry
    from puyu_apps.paths import cache_dir

    entry = get_entry(DEFAULT_MODEL)
    try:
        gguf = entry.locate()
    except Exception as exc:  # pragma: no cover - the model pack is not installed
        pytest.skip(f"{DEFAULT_MODEL} not installed: {exc}")
    return AutoTokenizer.from_pretrained(convert_gguf(gguf, cache_dir() / "models" / entry.name))


def test_token_lengths_with_the_smollm2_tokenizer(rows):
    tok = _tokenizer()
    total, out = {"en": [], "zh": []}, {"en": [], "zh": []}
    prompts = [tok.apply_chat_template(_example(r).prompt_messages(), tokenize=False, add_generation_prompt=True)
               for r in rows]
    p_ids = tok(prompts, add_special_tokens=False)["input_ids"]
    o_ids = tok([r["output"] for r in rows], add_special_tokens=False)["input_ids"]
    for r, p, o in zip(rows, p_ids, o_ids):
        n_out = len(o) + 1  # + EOS
        n = len(p) + n_out
        total[r["lang"]].append(n)
        out[r["lang"]].append(n_out)
        if r["meta"]["n_nodules"] <= 2:
            assert n <= 384, (n, r["instruction"], r["output"])
    assert max(total["en"]) <= 384 and max(out["en"]) <= 160
    assert max(total["zh"]) <= 512 and max(out["zh"]) <= 200  # Chinese costs ~2.5 tokens a character
    both = total["en"] + total["zh"]
    assert statistics.mean(both) <= 300 and sum(n <= 320 for n in both) >= 0.8 * len(both)
    assert statistics.mean(out["en"] + out["zh"]) <= 100


def test_scorer_gold_and_wrong(rows):
    multi = next(r for r in rows if r["lang"] == "en" and r["meta"]["n_nodules"] >= 2
                 and r["meta"]["lung_rads"] == "4B")
    gold = score(_example(multi), multi["output"])
    assert gold == {"lung_rads_agreement": 1.0, "field_accuracy": 1.0, "accepted_by_checker": 1.0,
                    "fully_accepted": 1.0, "gold:lung_rads": "4B", "pred:lung_rads": "4B"}
    assert MedicalReportPipeline.eval_scorer(_example(multi), multi["output"]) == gold
    wrong = ("FINDINGS: There is a 40 mm spiculated mass in the left upper lobe, suspicious for cancer.\n"
             "IMPRESSION: Likely malignancy, biopsy recommended. Lung-RADS 2.")
    bad = score(_example(multi), wrong)
    assert bad["lung_rads_agreement"] == 0.0 and bad["field_accuracy"] == 0.0
    assert bad["accepted_by_checker"] == 0.0 and bad["fully_accepted"] == 0.0 and bad["pred:lung_rads"] == "2"
    # right nodules, wrong category: only the category scores drop
    n = multi["meta"]["nodules"][0]
    half = multi["output"].replace("Lung-RADS 4B", "Lung-RADS 3")
    s = score(_example(multi), half)
    assert s["lung_rads_agreement"] == 0.0 and s["field_accuracy"] == 1.0 and s["fully_accepted"] == 0.0
    assert 0.5 < s["accepted_by_checker"] < 1.0
    # a wrong lobe for one nodule
    lobe = "left lower lobe" if n["lobe"] != "left lower lobe" else "right upper lobe"
    moved = multi["output"].replace(n["lobe"], lobe, 1)
    assert score(_example(multi), moved)["field_accuracy"] < 1.0
    assert score(_example(multi), "")["lung_rads_agreement"] == 0.0


def test_scorer_reads_chinese_and_empty_cases(rows):
    for lang in ("en", "zh"):
        for k in (0, 1, 3):
            r = next(r for r in rows if r["lang"] == lang and r["meta"]["n_nodules"] == k and r["meta"]["evaluable"])
            s = score(_example(r), r["output"])
            assert min(v for v in s.values() if isinstance(v, float)) == 1.0, (r["output"], s)
    zh = next(r for r in rows if r["lang"] == "zh" and r["meta"]["n_nodules"] == 2)
    n = zh["meta"]["nodules"][0]
    wrong = zh["output"].replace(f"{n['mean_diameter_mm']:.1f} mm", f"{n['mean_diameter_mm'] + 5:.1f} mm", 1)
    assert score(_example(zh), wrong)["field_accuracy"] == 0.5
    none = next(r for r in rows if r["meta"]["n_nodules"] == 0 and r["meta"]["evaluable"])
    made_up = "FINDINGS: Solid nodule of 6.0 mm in the right lower lobe.\nIMPRESSION: Lung-RADS 3."
    s = score(_example(none), made_up)
    assert s["field_accuracy"] == 0.0 and s["lung_rads_agreement"] == 0.0
    from puyu_apps.finetune.evaluate import aggregate

    agg = aggregate([score(_example(r), r["output"]) for r in rows[:40]])
    assert agg["lung_rads_macro_f1"] == 1.0 and agg["field_accuracy"] == 1.0


def _run_pipeline(monkeypatch, row: dict, llm_text: str):
    """The real preprocess / _forward / postprocess on a one-slice DICOM, with the segmentation and measurement
    replaced by the row's structured case and a fake LLM recording what it is sent."""
    from pydicom.data import get_testdata_file

    import puyu_apps.medical.measure as measure_mod
    import puyu_apps.medical.pipeline as pipeline_mod
    from puyu_apps.medical.measure import Found

    m = row["meta"]
    infos = [dict(n, long_axis_mm=n["mean_diameter_mm"], short_axis_mm=n["mean_diameter_mm"], solid_fraction=0.5,
                  key_slice=0, centre_lps_mm=[0.0, 0.0, 0.0], max_probability=0.9) for n in m["nodules"]]
    for info in infos:
        info.pop("category")
    found = [Found(info, (slice(0, 1), slice(0, 1), slice(0, 1)), np.ones((1, 1, 1), bool)) for info in infos]
    monkeypatch.setattr(measure_mod, "measure", lambda vol, prob, lung: found)
    monkeypatch.setattr(pipeline_mod, "MIN_SLICES", 1 if m["evaluable"] else 10)
    sent: dict = {}

    def generate(prompt, **kw):
        sent.update(kw, user=prompt)
        return SimpleNamespace(text=llm_text)

    pipe = MedicalReportPipeline(model="tiny-random-llama", language=row["lang"], key_images=False)
    pipe._warm, pipe._adapter_name = True, None
    pipe._lm = SimpleNamespace(generate=generate)
    pipe._segmenter = SimpleNamespace(predict=lambda vol: None)
    pipe._retriever = SimpleNamespace(hits=lambda vol, f: m["retrieved"]) if m["retrieved"] else None
    prepared = pipe.preprocess(get_testdata_file("CT_small.dcm"), history=m["history"])
    out = pipe._forward(prepared)
    return sent, pipe.postprocess(out)


def test_pipeline_sends_the_generators_prompt_and_keeps_the_gold_text(monkeypatch, rows):
    picks = [next(r for r in rows if r["lang"] == lang and r["meta"]["n_nodules"] == k and r["meta"]["evaluable"])
             for lang in ("en", "zh") for k in (0, 2, 4)]
    picks.append(next(r for r in rows if not r["meta"]["evaluable"]))
    for row in picks:
        assert case_messages(meta_case(row["meta"], row["lang"])) == (row["system"], row["instruction"])
        sent, result = _run_pipeline(monkeypatch, row, row["output"])
        assert (sent["system"], sent["user"]) == (row["system"], row["instruction"])
        assert result.lung_rads == row["meta"]["lung_rads"]
        assert result.flags == [] and result.category_check["agreed"], result.flags
        findings, impression = row["output"].split("\n")
        assert result.impression == impression.split("：" if row["lang"] == "zh" else ": ", 1)[1]
    # a text that fails the check still gets the computed fallback
    row = picks[1]
    _, result = _run_pipeline(monkeypatch, row, "The patient has cancer. Lung-RADS 1.")
    assert result.lung_rads == row["meta"]["lung_rads"] and result.flags
    assert all(f"{n['mean_diameter_mm']:.1f}" in result.findings for n in row["meta"]["nodules"])
