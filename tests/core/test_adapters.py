import json

import pytest

from puyu_apps import AdapterError, AdapterMismatchError
from puyu_apps.core import LanguageModel

from ..conftest import TINY, make_adapter

PROMPT = "Describe the nodule"


@pytest.fixture()
def lm():
    return LanguageModel.load(TINY)


def test_two_adapters_give_different_outputs_and_switch_per_call(lm, adapter_dirs):
    base = lm.generate(PROMPT, max_new_tokens=10).token_ids
    lm.load_adapter("a", adapter_dirs["a"])
    lm.load_adapter("b", adapter_dirs["b"])
    assert sorted(lm.info().adapters) == ["a", "b"]
    out_a = lm.generate(PROMPT, max_new_tokens=10, adapter="a").token_ids
    out_b = lm.generate(PROMPT, max_new_tokens=10, adapter="b").token_ids
    assert out_a != out_b and out_a != base
    # switching back and forth is stable, and adapter=None is the base model
    assert lm.generate(PROMPT, max_new_tokens=10, adapter="a").token_ids == out_a
    assert lm.generate(PROMPT, max_new_tokens=10).token_ids == base


def test_unload_and_merge(lm, adapter_dirs):
    lm.load_adapter("a", adapter_dirs["a"])
    lm.load_adapter("b", adapter_dirs["b"])
    with_b = lm.generate(PROMPT, max_new_tokens=10, adapter="b").token_ids
    lm.unload_adapter("a")
    assert lm.info().adapters == ["b"]
    with pytest.raises(AdapterError, match="no adapter named 'a'"):
        lm.generate(PROMPT, adapter="a")
    lm.merge_adapter("b")
    assert lm.info().adapters == [] and lm.info().merged_adapters == ["b"]
    assert lm.generate(PROMPT, max_new_tokens=10).token_ids == with_b


def test_unloading_the_last_adapter_restores_the_base(lm, adapter_dirs):
    base = lm.generate(PROMPT, max_new_tokens=8).token_ids
    lm.load_adapter("a", adapter_dirs["a"])
    lm.unload_adapter("a")
    assert lm.generate(PROMPT, max_new_tokens=8).token_ids == base


def test_adapter_for_another_base_model_is_refused(lm, adapter_dirs):
    with pytest.raises(AdapterMismatchError, match="tiny-random-qwen3"):
        lm.load_adapter("q", adapter_dirs["qwen"])
    assert lm.info().adapters == []


def test_adapter_without_metadata_but_wrong_shapes_is_refused(tmp_path):
    make_adapter("tiny-random-qwen3", tmp_path / "q", seed=4, r=4, write_meta=False)
    lm = LanguageModel.load("smollm2-135m-instruct")
    with pytest.raises(AdapterMismatchError, match="does not fit"):
        lm.load_adapter("q", tmp_path / "q")


def test_same_architecture_other_weights_is_refused(tmp_path):
    # same config as the tiny llama but other weights: only the fingerprint can tell them apart
    import torch

    from puyu_apps.core.adapters import AdapterSet

    adapter = make_adapter(TINY, tmp_path / "x", seed=5)
    other = LanguageModel.load(TINY).model
    with torch.no_grad():
        other.get_input_embeddings().weight.mul_(-1)
    with pytest.raises(AdapterMismatchError, match="fingerprint"):
        AdapterSet(other, "tweaked").load("x", adapter)


@pytest.mark.parametrize("breakage", ["no_config", "bad_json", "no_weights", "not_lora", "not_a_dir"])
def test_malformed_adapters_give_clear_errors(lm, adapter_dirs, tmp_path, breakage):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(adapter_dirs["a"], bad)
    if breakage == "no_config":
        (bad / "adapter_config.json").unlink()
    elif breakage == "bad_json":
        (bad / "adapter_config.json").write_text("{not json")
    elif breakage == "no_weights":
        (bad / "adapter_model.safetensors").unlink()
    elif breakage == "not_lora":
        cfg = json.loads((bad / "adapter_config.json").read_text())
        cfg["peft_type"] = "PREFIX_TUNING"
        (bad / "adapter_config.json").write_text(json.dumps(cfg))
    else:
        bad = bad / "adapter_config.json"
    with pytest.raises(AdapterError):
        lm.load_adapter("bad", bad)
    assert lm.info().adapters == []


def test_duplicate_adapter_name_is_refused(lm, adapter_dirs):
    lm.load_adapter("a", adapter_dirs["a"])
    with pytest.raises(AdapterError, match="already loaded"):
        lm.load_adapter("a", adapter_dirs["b"])


@pytest.mark.parametrize("name", ["eval", "train", "my.adapter", "法律"])
def test_any_adapter_name_works_even_module_attribute_names(lm, adapter_dirs, name):
    """peft keys adapters by module attribute; "eval" used to fail as a false base-model mismatch."""
    lm.load_adapter(name, adapter_dirs["a"])
    lm.load_adapter("b", adapter_dirs["b"])
    out = lm.generate(PROMPT, max_new_tokens=6, adapter=name).token_ids
    assert out != lm.generate(PROMPT, max_new_tokens=6, adapter="b").token_ids
    assert sorted(lm.info().adapters) == sorted([name, "b"])
    lm.unload_adapter(name)
    assert lm.info().adapters == ["b"]


def test_empty_adapter_name_is_refused(lm, adapter_dirs):
    with pytest.raises(AdapterError, match="non-empty"):
        lm.load_adapter("  ", adapter_dirs["a"])
