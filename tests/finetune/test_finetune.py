import json

import pytest
import torch
from safetensors.torch import load_file

from puyu_apps.core import LanguageModel
from puyu_apps.finetune import DataFormatError, DPConfig, FinetuneConfig, finetune, load_jsonl, write_jsonl
from puyu_apps.finetune.privacy import epsilon_spent

TINY = "tiny-random-llama"
COLOURS = ["red", "green", "blue", "white", "black", "yellow"]


def _rows(n, offset=0):
    return [{"instruction": "Name the colour code.", "input": f"code {(i + offset) % 6}",
             "output": f"The colour is {COLOURS[(i + offset) % 6]}."} for i in range(n)]


@pytest.fixture()
def data(tmp_path):
    train, held = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    write_jsonl(train, _rows(24))
    write_jsonl(held, _rows(6, offset=3))
    return train, held


def small_cfg(**kw):
    base = dict(r=4, alpha=8, dropout=0.1, learning_rate=5e-3, max_steps=8, batch_size=4, grad_accum=2,
                save_every=3, max_length=64)
    base.update(kw)
    return FinetuneConfig(**base)


def test_training_lowers_held_out_loss_and_saves_a_loadable_adapter(data, tmp_path):
    train, held = data
    report = finetune(TINY, train, tmp_path / "adapter", small_cfg(max_steps=12), eval_path=held,
                      vertical="demo", progress=False)
    assert report.steps == 12 and report.eval["adapter_eval_loss"] < report.eval["base_eval_loss"]
    assert not (tmp_path / "adapter" / "checkpoint").exists()  # a finished run leaves no resume state
    meta = json.loads((tmp_path / "adapter" / "puyu_adapter.json").read_text())
    assert meta["base_model"] == TINY and meta["vertical"] == "demo" and meta["train_data"]["n"] == 24
    card = (tmp_path / "adapter" / "README.md").read_text()
    assert "r=4, alpha=8" in card and "adapter_eval_loss" in card
    lm = LanguageModel.load(TINY)
    lm.load_adapter("demo", tmp_path / "adapter")
    assert lm.generate("x y z", adapter="demo", max_new_tokens=6).token_ids != \
        lm.generate("x y z", max_new_tokens=6).token_ids


def test_resumed_run_equals_uninterrupted_run(data, tmp_path):
    train, _ = data
    finetune(TINY, train, tmp_path / "full", small_cfg(), progress=False)
    with pytest.raises(KeyboardInterrupt):
        finetune(TINY, train, tmp_path / "resumed", small_cfg(), progress=False, _stop_after=5)
    assert not (tmp_path / "resumed" / "adapter_model.safetensors").exists()
    report = finetune(TINY, train, tmp_path / "resumed", small_cfg(), progress=False)
    assert report.resumed_from_step == 5
    a = load_file(tmp_path / "full" / "adapter_model.safetensors")
    b = load_file(tmp_path / "resumed" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_for_another_config_is_not_silently_reused(data, tmp_path):
    train, _ = data
    with pytest.raises(KeyboardInterrupt):
        finetune(TINY, train, tmp_path / "o", small_cfg(), progress=False, _stop_after=3)
    with pytest.raises(DataFormatError, match="another configuration"):
        finetune(TINY, train, tmp_path / "o", small_cfg(learning_rate=1e-3), progress=False)


def test_dp_sgd_trains_and_reports_the_budget(data, tmp_path):
    train, _ = data
    cfg = small_cfg(max_steps=4, dp=DPConfig(noise_multiplier=1.0, max_grad_norm=1.0))
    report = finetune(TINY, train, tmp_path / "dp", cfg, progress=False)
    assert report.dp_epsilon is not None and 0 < report.dp_epsilon < 100
    assert "epsilon spent" in (tmp_path / "dp" / "README.md").read_text()


def test_privacy_accountant_behaves():
    # more noise -> less epsilon; more steps -> more epsilon; full-batch Gaussian closed form bound
    assert epsilon_spent(0.01, 2.0, 1000, 1e-5) < epsilon_spent(0.01, 1.0, 1000, 1e-5)
    assert epsilon_spent(0.01, 1.0, 100, 1e-5) < epsilon_spent(0.01, 1.0, 1000, 1e-5)
    import math

    sigma, delta = 4.0, 1e-5
    closed = min(a / (2 * sigma**2) + math.log(1 / delta) / (a - 1) for a in range(2, 129))
    assert abs(epsilon_spent(1.0, sigma, 1, delta) - closed) < 1e-9


@pytest.mark.parametrize("content,match", [
    ("", "empty"),
    ('{"instruction": "a", "output": "b"}\n{broken\n', ":2: not valid JSON"),
    ('{"instruction": "a", "output": "b"}\n{"prompt": "a", "completion": "b"}\n', ":2: missing"),
    ('["a", "b"]\n', ":1: each line must be a JSON object"),
    ('{"instruction": "a", "output": "b", "extra": 1}\n', "unknown field"),
])
def test_bad_data_files_name_the_line(tmp_path, content, match):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DataFormatError, match=match):
        load_jsonl(path)


def test_adapter_trained_on_one_base_is_refused_by_another(data, tmp_path):
    from puyu_apps import AdapterMismatchError

    train, _ = data
    finetune("tiny-random-qwen3", train, tmp_path / "q", small_cfg(max_steps=1), progress=False)
    lm = LanguageModel.load(TINY)
    with pytest.raises(AdapterMismatchError):
        lm.load_adapter("q", tmp_path / "q")


@pytest.mark.parametrize("field,kw", [("r", {"r": 0}), ("learning_rate", {"learning_rate": 0}),
                                       ("warmup_ratio", {"warmup_ratio": 1.5})])
def test_config_validation_names_the_field(field, kw):
    with pytest.raises(ValueError, match=f"FinetuneConfig.{field}"):
        FinetuneConfig(**kw)


def test_cli_finetune_then_eval(data, tmp_path, capsys):
    from puyu_apps.cli import main

    train, held = data
    out = tmp_path / "cli_adapter"
    assert main(["finetune", "--data", str(train), "--eval", str(held), "--model", TINY, "--out", str(out),
                 "--steps", "3", "--r", "4", "--alpha", "8", "--batch-size", "4", "--max-length", "64"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == 3 and (out / "adapter_model.safetensors").exists()
    assert main(["eval", "--data", str(held), "--adapter", str(out), "--model", TINY, "--limit", "2",
                 "--max-new-tokens", "4"]) == 0
    table = capsys.readouterr().out
    assert "eval_loss" in table and "rouge_l" in table and "adapter" in table.splitlines()[0]


def test_cli_finetune_bad_data_exits_with_message(tmp_path, capsys):
    from puyu_apps.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a"}\n')
    assert main(["finetune", "--data", str(bad), "--model", TINY, "--out", str(tmp_path / "x")]) == 2
    assert "bad.jsonl:1: missing" in capsys.readouterr().err


def test_selective_loss_equals_the_full_model_loss(data):
    from puyu_apps.core.loading import load
    from puyu_apps.finetune.trainer import _collate, causal_lm_loss, encode_example

    loaded = load(TINY)
    rows = [encode_example(loaded.tokenizer, ex, FinetuneConfig(max_length=64)) for ex in load_jsonl(data[0])[:4]]
    batch = _collate(rows, loaded.tokenizer.eos_token_id)
    with torch.no_grad():
        full = loaded.model(**batch).loss
        ours = causal_lm_loss(loaded.model, batch, None)
    assert torch.allclose(full, ours, atol=1e-5), (full, ours)


def test_eval_writes_the_card_section_and_keeps_the_rest(data, tmp_path, capsys):
    from puyu_apps.cli import main

    train, held = data
    out = tmp_path / "a"
    finetune(TINY, train, out, small_cfg(max_steps=2), progress=False)
    card = tmp_path / "MODEL_CARD.md"
    card.write_text("# Card\n\nIntro stays.\n")
    for _ in range(2):  # the second run replaces the section instead of appending another
        assert main(["eval", "--data", str(held), "--adapter", str(out), "--model", TINY, "--limit", "2",
                     "--max-new-tokens", "3", "--write-card", str(card)]) == 0
    text = card.read_text()
    assert text.startswith("# Card\n\nIntro stays.") and text.count("## Adapter evaluation") == 1
    assert "| eval_loss |" in text and "| rouge_l |" in text


def test_finetune_vertical_without_generator_says_what_to_do(capsys):
    from puyu_apps.cli import main

    assert main(["finetune", "--vertical", "chat", "--model", TINY]) == 2
    assert "no training-data generator" in capsys.readouterr().err


def test_macro_f1_and_aggregate():
    from puyu_apps.finetune.evaluate import aggregate, macro_f1

    assert macro_f1(["a", "b"], ["a", "b"]) == 1.0
    assert macro_f1(["a", "a", "b"], ["a", "b", "b"]) == pytest.approx((2 / 3 + 2 / 3) / 2)
    agg = aggregate([{"x": 1.0, "gold:c": "a", "pred:c": "a"}, {"x": 0.0, "gold:c": "b", "pred:c": "a"}])
    assert agg["x"] == 0.5 and agg["c_macro_f1"] == pytest.approx((2 / 3 + 0) / 2)


def test_length_grouped_schedule_keeps_every_row_once_per_epoch_and_cuts_padding():
    import random

    from puyu_apps.finetune.trainer import _schedule

    lengths = [random.Random(i).randint(20, 300) for i in range(400)]
    grouped = _schedule(lengths, FinetuneConfig(batch_size=8, epochs=2, group_by_length=True))
    plain = _schedule(lengths, FinetuneConfig(batch_size=8, epochs=2, group_by_length=False))
    assert grouped == _schedule(lengths, FinetuneConfig(batch_size=8, epochs=2))  # fixed by the seed: resumable
    for batches in (grouped, plain):
        assert len(batches) == 100 and all(len(b) == 8 for b in batches)
        assert sorted(i for b in batches[:50] for i in b) == list(range(400))  # one epoch: every row once

    def padded(batches):
        return sum(max(lengths[i] for i in b) * len(b) for b in batches)

    assert padded(grouped) < 0.85 * padded(plain)
    assert grouped[0] != sorted(grouped[0]) or grouped[1] != grouped[0]  # not one global sort: batches vary
    firsts = [min(lengths[i] for i in b) for b in grouped[:50]]
    assert firsts != sorted(firsts)  # the batches are shuffled, not served shortest first


@pytest.mark.skipif(not __import__("puyu_apps.engine", fromlist=["available"]).available(),
                    reason="llama-cpp-python is not installed (the 'fast' extra)")
def test_eval_scores_answers_on_the_fast_path_in_batches(tmp_path, capsys):
    """`puyu eval` on the embedded model: the loss on the transformers weights, the answers on llama.cpp 4 at a
    time with the shipped service adapter, which must beat the base model on its own task."""
    from puyu_apps.cli import main

    assert main(["eval", "--vertical", "service", "--limit", "4", "--max-new-tokens", "40", "--concurrency", "4",
                 "--json"]) == 0
    out = capsys.readouterr().out
    assert "answers: llama.cpp" in out and "4 at a time" in out
    rows = json.loads(out[out.index("{"): out.rindex("}") + 1])
    assert rows["adapter"]["eval_loss"] < rows["base"]["eval_loss"]
    assert rows["adapter"]["intent_accuracy"] > rows["base"]["intent_accuracy"]
