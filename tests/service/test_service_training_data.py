"""The service adapter's generated training data, its reply format (intent line) and task scorer."""

import random
from collections import Counter

import pytest

from puyu_apps.finetune.data import load_jsonl, write_jsonl
from puyu_apps.finetune.evaluate import aggregate
from puyu_apps.service import CustomerServicePipeline
from puyu_apps.service.prompting import INTENT_LABELS, IntentLineFilter, ServicePrompts, split_intent
from puyu_apps.service.training_data import (case_row, make_cases, make_examples, normalise, score_output,
                                             utterance_of)


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    out = tmp_path_factory.mktemp("service-data")
    train, held = CustomerServicePipeline.make_training_data(out, n_train=600, n_eval=80, seed=0)
    return train, held


def test_deterministic_for_a_seed():
    a, b = make_examples(30, seed=5), make_examples(30, seed=5)
    assert a == b
    assert [r["instruction"] for r in make_examples(30, seed=6)] != [r["instruction"] for r in a]
    assert [r["lang"] for r in a[:4]] == ["en", "zh", "en", "zh"]
    assert {r["lang"] for r in make_examples(6, seed=5, langs=("zh",))} == {"zh"}


def test_splits_load_are_disjoint_and_cover_every_intent(splits):
    train_path, eval_path = splits
    train, held = load_jsonl(train_path), load_jsonl(eval_path)
    assert len(train) == 600 and len(held) == 80
    for rows in (train, held):
        langs = Counter(ex.lang for ex in rows)
        assert langs["en"] == langs["zh"] == len(rows) // 2
        assert all(ex.system and ex.instruction.startswith("Customer: ") for ex in rows)
        assert all(ex.output.startswith(f"intent: {ex.meta['intent']}\n") for ex in rows)
    assert {ex.meta["intent"] for ex in train} == set(INTENT_LABELS)
    assert {(ex.lang, ex.meta["intent"]) for ex in train} == {(lang, i) for lang in ("en", "zh") for i in INTENT_LABELS}
    keys = lambda rows: {normalise(utterance_of({"instruction": ex.instruction})) for ex in rows}  # noqa: E731
    assert len(keys(train)) == len(train) and len(keys(held)) == len(held)
    assert not keys(train) & keys(held)  # the held-out callers never said anything seen in training
    assert len({ex.instruction for ex in train} | {ex.instruction for ex in held}) == len(train) + len(held)
    # the variety the adapter must learn: tones, ASR-style turns, earlier turns, order numbers, escalations
    metas = [ex.meta for ex in train]
    assert {m["tone"] for m in metas} == {"polite", "neutral", "negative", "angry"}
    assert 0.15 < sum(m["channel"] == "voice" for m in metas) / len(metas) < 0.45
    assert 0.1 < sum(m["history_turns"] > 0 for m in metas) / len(metas) < 0.4
    assert sum(bool(m["order"]) for m in metas) > 50 and 0.1 < sum(m["escalate"] for m in metas) / len(metas) < 0.4
    assert sum(bool(m["facts"]) for m in metas) / len(metas) > 0.4
    for ex in train:  # a grounded reply states its fact's key value, copied from the facts in the prompt
        for fact in ex.meta["facts"]:
            assert fact["key"] in ex.output.split("\n", 1)[1] and fact["key"] in ex.instruction


def test_token_lengths_fit_the_budget():
    from transformers import AutoTokenizer

    from puyu_apps.core import DEFAULT_MODEL, get_entry
    from puyu_apps.core.loading import convert_gguf
    from puyu_apps.errors import ModelLoadError
    from puyu_apps.paths import cache_dir

    try:
        folder = convert_gguf(get_entry(DEFAULT_MODEL).locate(), cache_dir() / "models" / DEFAULT_MODEL)
    except ModelLoadError as exc:
        pytest.skip(f"SmolLM2 not installed: {exc}")
    tok = AutoTokenizer.from_pretrained(folder)
    totals, outputs = [], []
    for r in make_examples(300, seed=0):
        msgs = [{"role": "system", "content": r["system"]}, {"role": "user", "content": r["instruction"]}]
        prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        n_out = len(tok(r["output"], add_special_tokens=False)["input_ids"]) + 1  # + end of turn
        outputs.append(n_out)
        totals.append(len(tok(prompt, add_special_tokens=False)["input_ids"]) + n_out)
    totals.sort()
    assert max(outputs) <= 70 and max(totals) <= 340  # under FinetuneConfig.max_length (384): nothing cut
    assert totals[int(0.95 * len(totals))] <= 320 and totals[len(totals) // 2] <= 250


def test_scorer_gold_is_perfect_and_wrong_answers_score_low(splits):
    held = load_jsonl(splits[1])
    gold = [score_output(ex, ex.output) for ex in held]
    agg = aggregate(gold)
    assert agg["intent_accuracy"] == agg["fact_grounded"] == agg["language_ok"] == agg["format_ok"] == 1.0
    assert agg["intent_macro_f1"] == 1.0 and agg["handover_ok"] == 1.0
    assert agg["numbers_grounded"] == 1.0  # the gold replies state only numbers their prompt holds
    # a request the facts do not cover: a made-up fact (or no hand-over) is wrong
    ho = next(e for e in held if e.lang == "en" and not e.meta["facts"] and "follow up" in e.output)
    made_up = score_output(ho, f"intent: {ho.meta['intent']}\nLet me help with that. Tap 'Forgot password' on "
                               f"the login screen and follow the link we email you.")
    assert made_up["handover_ok"] == 0 and score_output(ho, ho.output)["handover_ok"] == 1
    ex = next(e for e in held if e.lang == "en" and e.meta["facts"])
    wrong_intent = next(i for i in INTENT_LABELS if i != ex.meta["intent"])
    bad = score_output(ex, f"intent: {wrong_intent}\nA colleague will follow up on this shortly.")
    assert bad["intent_accuracy"] == 0 and bad["fact_grounded"] == 0 and bad["format_ok"] == 1
    assert "handover_ok" not in bad  # scored on hand-over rows only
    assert bad["numbers_grounded"] == 1  # no number stated
    invented = score_output(ex, f"intent: {ex.meta['intent']}\nI see the charge of 37 dollars on order 90211.")
    assert invented["numbers_grounded"] == 0
    zh_reply = score_output(ex, f"intent: {ex.meta['intent']}\n我们的同事会尽快跟进。")
    assert zh_reply["intent_accuracy"] == 1 and zh_reply["language_ok"] == 0
    base = score_output(ex, "Thank you for contacting us! We are happy to help you with anything you need.")
    assert base["intent_accuracy"] == base["format_ok"] == base["fact_grounded"] == 0 and base["pred:intent"] == "none"
    assert aggregate([base] * 3)["intent_macro_f1"] == 0.0


def test_intent_line_is_stripped_from_a_stream_split_anywhere():
    def run(pieces):
        f = IntentLineFilter()
        spoken = "".join(f.feed(p) for p in pieces) + f.finish()
        return f.intent, spoken

    assert run(["", "int", "ent", ":", " ref", "und\n", "I can ", "help."]) == ("refund", "I can help.")
    assert run(["\n in", "tent： order_", "status\n我看到了", "订单。"]) == ("order_status", "我看到了订单。")
    assert run(["intent: human_agent"]) == ("human_agent", "")
    assert run(["Intent: billing I see the charge."]) == ("billing", "I see the charge.")
    # base-model replies (no intent line) pass through untouched
    assert run(["In", "tent", "ionally, we ship fast."]) == (None, "Intentionally, we ship fast.")
    assert run(["I", " can help", "."]) == (None, "I can help.")
    assert run(["Sure", "! The intent: is"]) == (None, "Sure! The intent: is")
    rng = random.Random(0)
    texts = ["intent: refund\nI can help with your refund. Refunds take 5 business days.",
             "intent: other\nSorry, I can only help with orders, refunds, billing and your account.",
             "intent: greeting\n您好！请问有什么可以帮您？", "We are sorry. Intent matters.", "inte"]
    for text in texts:
        for _ in range(40):  # every way of cutting the text into pieces gives the same result
            cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(1, 8))))
            pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
            intent, spoken = run(pieces)
            assert (intent, spoken.strip()) == split_intent(text)
    assert split_intent(texts[0]) == ("refund", "I can help with your refund. Refunds take 5 business days.")


class FakeStream:
    """What ``LanguageModel.stream`` returns, replaying fixed pieces (``result`` None: as after a cancel)."""

    def __init__(self, pieces):
        self.pieces, self.result = pieces, None

    def __iter__(self):
        yield from self.pieces


def test_pipeline_speaks_the_reply_not_the_intent_line(tmp_path, monkeypatch):
    pipe = CustomerServicePipeline(model="tiny-random-llama", db_url=f"sqlite:///{tmp_path / 't.db'}",
                                   max_new_tokens=60)
    heard = []
    pipe.on_audio = heard.append
    pipe.warm_up()
    pieces = ["int", "ent: re", "fund", "\nI can help", " with your refund. Refunds are issued to the original "
              "payment method within 5 business days", " after we receive the returned item."]
    # pipe.lm is the process-wide shared model: patch it for this test only
    monkeypatch.setattr(pipe.lm, "stream", lambda *a, **k: FakeStream(pieces))  # adapter's format, awkward cuts
    res = pipe("Hello, I would like a refund for my lamp please.")
    assert res.model_intent == "refund" and res.intent == "refund"
    assert res.reply.startswith("I can help with your refund.") and "intent" not in res.reply.lower()
    assert res.reply.count("5 business days") == 1  # the adapter's grounded answer is not appended to again
    assert heard and not any("intent" in c.text.lower() for c in heard)
    assert res.reply_sentences[0] == "I can help with your refund."
    assert "(model: refund)" in res.to_text()
    assert pipe.sessions[res.session_id].history[-1]["content"] == res.reply
    # the base model's free-form answer: no intent, streamed and grounded as before
    monkeypatch.setattr(pipe.lm, "stream", lambda *a, **k: FakeStream(["In", "tent", "ionally we help. ", "Thanks!"]))
    res = pipe("Hello, I would like a refund for my lamp please.")
    assert res.model_intent is None and res.reply.startswith("Intentionally we help. Thanks!")
    assert "5 business days" in res.reply  # grounding="append" added the FAQ answer
    pipe.close()


def test_pipeline_and_generator_send_the_same_prompt(tmp_path, monkeypatch):
    prompts = ServicePrompts.load()
    cases = make_cases(60, seed=1, prompts=prompts)
    chosen = [next(c for c in cases if c.lang == lang and bool(c.history) == hist)
              for lang in ("en", "zh") for hist in (False, True)]
    rows = [case_row(prompts, c, f"r{i}") for i, c in enumerate(chosen)]
    write_jsonl(tmp_path / "rows.jsonl", rows)
    examples = load_jsonl(tmp_path / "rows.jsonl")
    pipe = CustomerServicePipeline(model="tiny-random-llama", db_url=f"sqlite:///{tmp_path / 't.db'}", tts=None,
                                   max_new_tokens=2)
    pipe.warm_up()
    sent, real = [], pipe.lm.stream

    def spy(messages, *a, **k):
        sent.append(messages)
        return real(messages, *a, **k)

    monkeypatch.setattr(pipe.lm, "stream", spy)
    for i, (case, ex) in enumerate(zip(chosen, examples)):
        sid = f"same-{i}"
        pipe.session(sid).history = [dict(m) for m in case.history]
        pipe(case.text, session_id=sid)
        assert sent[-1] == ex.prompt_messages()  # exactly what the adapter was trained on
        assert ex.meta["history"] == case.history
    assert any("\nAssistant: " in m[1]["content"] for m in sent)
    pipe.close()


def test_scorer_is_wired_for_puyu_eval():
    from puyu_apps.pipelines import get

    assert get("service").eval_scorer is score_output
    assert CustomerServicePipeline.make_training_data.__func__ is not \
        CustomerServicePipeline.__mro__[1].make_training_data.__func__


def test_a_strong_faq_match_is_rare_for_requests_the_facts_do_not_cover():
    """The threshold above which the pipeline states the best FAQ answer after an adapter reply that stated none
    (grounding="append"): measured on generated turns, not chosen by hand."""
    from puyu_apps.service.pipeline import STRONG_MATCH
    from puyu_apps.service.prompting import ServicePrompts
    from puyu_apps.service.training_data import gold_reply

    prompts = ServicePrompts.load()
    covered, not_covered = [], []
    for case in make_cases(1500, 0, split="train", prompts=prompts):
        if case.answer in ("hello", "thanks", "scope"):
            continue
        hits = prompts.kb.search(case.text, k=2)
        top = hits[0][1] if hits else 0.0
        (covered if gold_reply(prompts, case, hits)[1] else not_covered).append(top >= STRONG_MATCH)
    assert len(covered) > 500 and len(not_covered) > 200
    assert sum(not_covered) / len(not_covered) <= 0.015  # a made-up fact at most 1.5 % of the time
    assert sum(covered) / len(covered) >= 0.12           # and it fires on a useful share of the answerable turns
