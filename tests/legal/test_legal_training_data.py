"""The legal adapter's generated training data, answer format, task scorer, and the pipeline's use of the
adapter's answers (with a scripted stand-in for the model: no training, no real generation)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from puyu_apps.finetune.data import Example, load_jsonl
from puyu_apps.legal import review, rules, training_data as td
from puyu_apps.legal.pipeline import ContractReviewPipeline
from puyu_apps.legal.types import Clause

TINY = "tiny-random-llama"
CLASSES = {c.id for c in rules.CATEGORIES} | {"none"}
MAX_TOTAL, MAX_OUTPUT = 320, 80   # SmolLM2 tokens: prompt + answer, and the answer alone


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    out = tmp_path_factory.mktemp("legal_data")
    train, held = ContractReviewPipeline.make_training_data(out)   # the defaults: 3000 + 200
    return load_jsonl(train), load_jsonl(held), train, held


@pytest.fixture(scope="module")
def smol_tokenizer():
    from puyu_apps.core import DEFAULT_MODEL
    from puyu_apps.core.loading import convert_gguf
    from puyu_apps.core.registry import get_entry
    from puyu_apps.paths import cache_dir

    entry = get_entry(DEFAULT_MODEL)
    if not entry.available():
        pytest.skip("the embedded SmolLM2 pack is not installed")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(convert_gguf(entry.locate(), cache_dir() / "models" / DEFAULT_MODEL))


def _example(row: dict) -> Example:
    return Example(row["instruction"], "", row["output"], row["lang"], row["meta"], row["system"])


def test_deterministic_for_a_seed():
    a, b = td.make_examples(40, seed=3), td.make_examples(40, seed=3)
    assert a == b
    assert [r["instruction"] for r in td.make_examples(40, seed=4)] != [r["instruction"] for r in a]
    assert {r["lang"] for r in td.make_examples(6, seed=3, langs=("zh",))} == {"zh"}
    with pytest.raises(ValueError, match="langs"):
        td.make_examples(2, seed=0, langs=("fr",))


def test_splits_load_balanced_and_complete(splits):
    train, held, train_path, _ = splits
    assert len(train) == 3000 and len(held) == 200
    for rows in (train, held):
        langs = [e.lang for e in rows]
        assert abs(langs.count("en") - langs.count("zh")) <= 1
        assert {e.meta["category"] for e in rows} == CLASSES
        assert {e.meta["category"] for e in rows if e.lang == "zh"} == CLASSES
        assert all(e.system == review.SYSTEM and e.output.startswith("Category: ") for e in rows)
        assert all(e.meta["risk"] == review.default_risk(e.meta["category"]) for e in rows)
    # the ids and meta travel through the file
    first = json.loads(train_path.read_text(encoding="utf-8").splitlines()[0])
    assert set(first) == {"id", "lang", "system", "instruction", "output", "meta"}
    # near-misses and clauses the rule patterns miss are both there: the adapter has something to add
    assert sum(e.meta["near_miss"] for e in train) > 100
    missed = [e for e in train if e.meta["category"] != "none" and e.meta["category"] not in e.meta["rule_categories"]]
    assert len(missed) > 300


def test_held_out_split_is_disjoint_from_training(splits):
    train, held, _, _ = splits
    assert not {e.instruction for e in train} & {e.instruction for e in held}
    train_clauses = {e.meta["clause"] for e in train}
    assert not any(e.meta["clause"] in train_clauses for e in held)
    assert not any(e.meta["heldout_template"] for e in train)
    assert 60 <= sum(e.meta["heldout_template"] for e in held) <= 140
    # no clause of the sample contracts (tests, benchmarks/legal.py) is in the data
    from puyu_apps.legal import sample_text as T
    from puyu_apps.legal.samples import _fee

    bodies = {body.format(fee=fee, fee_words=words) for lang, clauses in (("en", T.EN_CLAUSES), ("zh", T.ZH_CLAUSES))
              for _, _, body in clauses for fee, words in (_fee(lang == "zh", False), _fee(lang == "zh", True))}
    assert not any(b in e.meta["clause"] for e in train + held for b in bodies)


def test_token_lengths_fit_smollm2(splits, smol_tokenizer):
    from puyu_apps.finetune.config import FinetuneConfig
    from puyu_apps.finetune.trainer import encode_example

    train, held, _, _ = splits
    rows = train + held

    def estimate(e: Example) -> float:  # CJK characters cost about 1.8 tokens, Latin words about 1.3
        text = e.instruction + e.output
        cjk = sum("\u4e00" <= ch <= "\u9fff" for ch in text)
        return 1.8 * cjk + 1.3 * len(text.split())

    longest = sorted(rows, key=estimate)[-150:]
    cfg = FinetuneConfig(max_length=10_000)
    for e in longest + rows[::25]:
        ids, labels = encode_example(smol_tokenizer, e, cfg)
        n_out = sum(x != -100 for x in labels)
        assert len(ids) <= MAX_TOTAL and n_out <= MAX_OUTPUT, (len(ids), n_out, e.instruction)


def test_pipeline_and_generator_send_the_same_prompt(smol_tokenizer):
    from puyu_apps.core import LanguageModel

    rows = td.make_examples(24, seed=5)
    pipe = ContractReviewPipeline(model=TINY)
    fake = _FakeLM({r["meta"]["clause"]: r["output"] for r in rows})
    pipe._lm, pipe._adapter_name, pipe._warm = fake, "legal", True
    clauses = [Clause(index=i, number=str(i + 1), text=r["meta"]["clause"], page=1, box=(0, 0, 1, 1))
               for i, r in enumerate(rows)]
    pipe._review(clauses, [], explain=0, classify=True, max_reviews=100, attach=False)
    assert fake.calls == [(r["system"], r["instruction"]) for r in rows]
    # and the chat the model sees is the same text in training (Example) and at inference (LanguageModel)
    chat = SimpleNamespace(is_chat=True, tokenizer=smol_tokenizer)
    for r in rows[:4]:
        ex = _example(r)
        trained = smol_tokenizer.apply_chat_template(ex.prompt_messages(), tokenize=False, add_generation_prompt=True)
        assert LanguageModel.format_prompt(chat, r["instruction"], system=r["system"]) == trained


@pytest.mark.parametrize("text, cat, risk, ok", [
    ("Category: payment_terms. Risk: medium.\nClient must pay USD 5,000 within 30 days.", "payment_terms", "medium",
     True),
    ("Category: penalty. Risk: high.\n违约方须付固定违约金¥20,000，请核对是否相称。", "penalty", "high", True),
    ("类别：违约金；风险：高。\n违约方须付违约金¥20,000。", "penalty", "high", True),
    ("类别：payment_terms；风险：中。\n甲方须在15日内付款。", "payment_terms", "medium", True),
    ("Category: Limitation of liability. Risk: High.\nCaps liability.", "limitation_of_liability", "high", True),
    ("Category: none. Risk: low.\nA routine notice clause.", "none", "low", True),
    ("category : auto-renewal ; risk : medium\nRenews itself.", "auto_renewal", "medium", True),
    ("Category: payment_terms. Risk: medium. All on one line.", "payment_terms", "medium", False),
    ("Indemnification", "indemnification", None, False),
    ("This clause concerns indemnification and payment terms.", None, None, False),
    ("Category: whatever. Risk: medium.\nx", None, "medium", False),
    ("", None, None, False),
])
def test_parser_reads_both_languages(text, cat, risk, ok):
    ans = review.parse_answer(text)
    assert (ans.category, ans.risk, ans.format_ok) == (cat, risk, ok)


def test_scorer_gold_is_perfect_and_wrong_is_low(splits):
    from puyu_apps.finetune.evaluate import aggregate

    _, held, _, _ = splits
    gold = aggregate([review.score(e, e.output) for e in held])
    assert gold["category_accuracy"] == gold["risk_level_accuracy"] == gold["format_ok"] == 1.0
    assert gold["values_quoted"] == 1.0 and gold["category_macro_f1"] == 1.0

    def wrong(e: Example) -> str:
        other = "penalty" if e.meta["category"] != "penalty" else "assignment"
        return review.format_answer(other, "It is fine.")

    bad = aggregate([review.score(e, wrong(e)) for e in held])
    assert bad["category_accuracy"] == 0.0 and bad["values_quoted"] == 0.0 and bad["category_macro_f1"] < 0.1
    junk = aggregate([review.score(e, "I am a helpful assistant.") for e in held])
    assert junk["format_ok"] == 0.0 and junk["category_accuracy"] == 0.0
    # the Chinese first line scores like the English one; the gold can come from the output alone
    ex = Example("x", "", "Category: penalty. Risk: high.\n违约方须付违约金¥20,000。", "zh")
    assert review.score(ex, "类别：违约金；风险：高。\n违约方须付违约金¥20,000。")["category_accuracy"] == 1.0
    assert ContractReviewPipeline.eval_scorer is review.score


def test_adapter_answers_explain_and_add_findings():
    """What the pipeline does with the adapter's answers: explanations on rule findings, categories the rules
    missed as source='llm' findings, disagreements marked; the rule findings are never removed."""
    from puyu_apps.legal.structure import Structure

    texts = {
        # the rules flag payment terms; the model agrees
        "3. Fees. Client shall pay Provider USD 9,000 per month. Invoices are payable within 30 days.":
            "Category: payment_terms. Risk: medium.\nClient must pay USD 9,000 per month within 30 days.",
        # the rules miss this paraphrase; the model names it
        "7. Provider may end this Agreement whenever it wishes, without giving reasons, by sending Client 10 days' "
        "written notice.": "Category: termination_for_convenience. Risk: high.\nProvider can end it on 10 days' "
                           "notice.",
        # a near-miss the rules flag (auto-renewal); the model disagrees, the rule finding stays
        "9. This Agreement expires at the end of 2 years and does not renew automatically.":
            "Category: none. Risk: low.\nThe contract simply ends after 2 years.",
        # an unreadable answer: nothing added
        "11. Notices shall be in writing.": "I cannot tell.",
    }
    clauses = [Clause(index=i, number=t.split(".")[0], text=t, page=1, box=(0, 0, 1, 1)) for i, t in enumerate(texts)]
    findings = rules.review_clauses(Structure(clauses=clauses))
    assert {f.category for f in findings} == {"payment_terms", "auto_renewal"}
    pipe = ContractReviewPipeline(model=TINY)
    pipe._lm, pipe._adapter_name, pipe._warm = _FakeLM(texts), "legal", True
    added = pipe._review(clauses, findings, explain=12, classify=True, max_reviews=60, attach=True)
    assert [(f.category, f.source, f.clause_index) for f in added] == [("termination_for_convenience", "llm", 1)]
    assert added[0].explanation == "Provider can end it on 10 days' notice." and added[0].severity == "high"
    by_cat = {f.category: f for f in findings}
    assert by_cat["payment_terms"].explanation == "Client must pay USD 9,000 per month within 30 days."
    assert by_cat["auto_renewal"].explanation == "(model: none) The contract simply ends after 2 years."
    assert [c.llm_category for c in clauses] == ["payment_terms", "termination_for_convenience", "none", None]
    assert "termination_for_convenience" in clauses[1].categories
    # without classify only flagged clauses are asked (most severe first, up to max_explanations)
    fake = _FakeLM(texts)
    pipe._lm = fake
    assert pipe._review(clauses, findings, explain=1, classify=False, max_reviews=60, attach=True) == []
    assert len(fake.calls) == 1


def test_llm_classify_defaults_to_on_with_an_adapter(tmp_path):
    from puyu_apps.legal.samples import SampleSpec, make_contract

    pdf = tmp_path / "c.pdf"
    truth = make_contract(pdf, SampleSpec("en"))
    pipe = ContractReviewPipeline(model=TINY, max_explanations=3)
    assert pipe.llm_classify is None and pipe.init_parameters()["llm_classify"] is None
    pipe._lm, pipe._adapter_name, pipe._warm = _FakeLM({}, default="Category: penalty. Risk: high.\nA fixed sum."), \
        "legal", True
    events = list(pipe.stream(pdf))
    result = events[-1].result
    assert [e for e in events if e.stage == "review"]
    assert set(truth.risks) <= {f.category for f in result.findings if f.source == "rule"}
    llm = [f for f in result.findings if f.source == "llm"]
    assert llm and {f.category for f in llm} == {"penalty"} and all(f.explanation == "A fixed sum." for f in llm)
    assert all(c.llm_category == "penalty" for c in result.clauses if c.number)
    # explicitly off: explanations only, no llm findings
    events = list(pipe.stream(pdf, llm_classify=False))
    assert not [f for f in events[-1].result.findings if f.source == "llm"]
    with pytest.raises(ValueError, match="max_reviews"):
        ContractReviewPipeline(max_reviews=-1)


def test_chinese_amounts_in_capitals_read_back():
    from puyu_apps.legal.numbers import zh_words_to_number

    for v in (5000, 15000, 50000, 120000, 1_005_000, 2_000_000, 750_000):
        assert zh_words_to_number(td.zh_capital(v)) == v
    assert [td.zh_number(n) for n in (1, 10, 15, 30, 45)] == ["一", "十", "十五", "三十", "四十五"]


class _FakeLM:
    """Records (system, user) of each call and answers from a clause -> answer map."""

    def __init__(self, answers: dict[str, str], default: str = ""):
        self.answers, self.default, self.calls = answers, default, []

    def generate(self, prompt, config=None, *, adapter=None, system=None, **kw):
        self.calls.append((system, prompt))
        clause = prompt.split('"', 1)[1].rsplit('"\n\nCategories', 1)[0]
        return SimpleNamespace(text=self.answers.get(clause, self.default), finish_reason="stop")

    def info(self):
        return SimpleNamespace(model_dump=lambda: {"model": "fake"})
