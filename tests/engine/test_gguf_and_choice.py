"""GGUF export, the peft -> GGUF LoRA converter, the backend choice and the metrics (no llama.cpp needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from puyu_apps.core.config import LoadConfig
from puyu_apps.engine import backend as backend_mod
from puyu_apps.engine import lora_gguf
from puyu_apps.engine.gguf_model import embedding_rows, export_model, fingerprint, permute_rows, read_base
from puyu_apps.engine.metrics import generation_metrics, percentile, repetition_rate
from puyu_apps.errors import AdapterMismatchError, DeviceUnavailableError, MissingDependencyError

from .conftest import make_folder_adapter


@pytest.fixture(scope="module")
def tiny_export(tiny_folder, tmp_path_factory):
    from puyu_apps.core.loading import load

    loaded = load(str(tiny_folder))
    path = export_model(loaded.model, tmp_path_factory.mktemp("gguf") / "tiny.gguf", ftype="f32")
    return loaded, path


def test_export_header_and_fingerprint(tiny_export):
    from puyu_apps.core.adapters import base_fingerprint

    loaded, path = tiny_export
    base = read_base(path)
    cfg = loaded.model.config
    assert (base.arch, base.n_layer, base.n_head, base.n_head_kv) == ("llama", 2, 4, 2)
    assert base.n_vocab == cfg.vocab_size and base.weight_format == "F32"
    assert base.shapes["blk.0.attn_k.weight"] == (32, 64)
    # the adapters' fingerprint is computed from the GGUF file alone and equals the transformers model's
    assert fingerprint(cfg, embedding_rows(path)) == base_fingerprint(loaded.model)


@pytest.mark.parametrize("ftype,name", [("f16", "F16"), ("q8_0", "Q8_0"),
                                        ("q4_1", "Q4_1 (token embedding Q8_0)")])
def test_export_formats(tiny_export, tmp_path, ftype, name):
    loaded, _ = tiny_export
    base = read_base(export_model(loaded.model, tmp_path / f"m-{ftype}.gguf", ftype=ftype))
    assert base.weight_format == name
    assert base.tensor_types["blk.0.attn_norm.weight"] == "F32"


def test_embedded_pack_fingerprint_matches_transformers(default_lm):
    from puyu_apps.core.adapters import base_fingerprint
    from puyu_apps.core.loading import load
    from puyu_apps.core.registry import _smollm2_gguf

    gguf = _smollm2_gguf()
    assert read_base(gguf).weight_format == "Q4_1 (token embedding Q8_0)"
    model = load("smollm2-135m-instruct").model
    assert fingerprint(model.config, embedding_rows(gguf)) == base_fingerprint(model)


def test_lora_conversion_layout(tiny_export, tiny_folder, tmp_path):
    from safetensors.numpy import load_file

    _, path = tiny_export
    base = read_base(path)
    ad = make_folder_adapter(tiny_folder, tmp_path / "ad", seed=1, r=8,
                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    out = lora_gguf.convert("ad", ad, base, tmp_path / "ad.gguf")
    meta = lora_gguf.describe(out)
    assert meta["general.type"] == "adapter" and meta["adapter.type"] == "lora"
    assert meta["general.architecture"] == "llama" and meta["adapter.lora.alpha"] == pytest.approx(16.0)
    shapes = meta["tensors"]
    assert shapes["blk.1.attn_q.weight.lora_a"] == [8, 64] and shapes["blk.1.attn_q.weight.lora_b"] == [64, 8]
    assert shapes["blk.0.attn_k.weight.lora_b"] == [32, 8] and "blk.0.attn_output.weight.lora_a" in shapes
    # the rows of B are permuted for q (4 heads) and k (2 KV heads), not for v / o
    import gguf

    tensors = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(out).tensors}
    peft = load_file(ad / "adapter_model.safetensors")
    key = "base_model.model.model.layers.0.self_attn.{}.lora_B.weight"
    np.testing.assert_array_equal(tensors["blk.0.attn_q.weight.lora_b"], permute_rows(peft[key.format("q_proj")], 4))
    np.testing.assert_array_equal(tensors["blk.0.attn_k.weight.lora_b"], permute_rows(peft[key.format("k_proj")], 2))
    np.testing.assert_array_equal(tensors["blk.0.attn_v.weight.lora_b"], peft[key.format("v_proj")])
    # cached by content: the same adapter for the same base converts once
    fp = "x" * 16
    first = lora_gguf.cached_convert("ad", ad, base, fp)
    mtime = first.stat().st_mtime_ns
    assert lora_gguf.cached_convert("other-name", ad, base, fp) == first and first.stat().st_mtime_ns == mtime


def test_lora_scaling_is_folded_when_modules_differ(tiny_export, tiny_folder, tmp_path):
    _, path = tiny_export
    ad = make_folder_adapter(tiny_folder, tmp_path / "pat", seed=2, r=4, alpha_pattern={"v_proj": 1.0})
    meta = lora_gguf.describe(lora_gguf.convert("pat", ad, read_base(path), tmp_path / "pat.gguf"))
    assert meta["adapter.lora.alpha"] == 0.0  # llama.cpp then uses scale 1: peft's scale is inside B


def test_lora_for_another_shape_is_refused(adapter_dirs, tmp_path):
    from puyu_apps.core.registry import _smollm2_gguf

    with pytest.raises(AdapterMismatchError, match="does not fit.*lora_A"):
        lora_gguf.convert("q", adapter_dirs["qwen"], read_base(_smollm2_gguf()), tmp_path / "q.gguf")


def test_lora_refusals(tiny_export, tiny_folder, tmp_path):
    _, path = tiny_export
    base = read_base(path)
    dora = make_folder_adapter(tiny_folder, tmp_path / "dora", seed=3, use_dora=True)
    with pytest.raises(lora_gguf.UnsupportedAdapterError, match="DoRA"):
        lora_gguf.convert("dora", dora, base, tmp_path / "d.gguf")
    other = read_base(path)
    other.arch = "gemma3"
    ok = make_folder_adapter(tiny_folder, tmp_path / "ok", seed=4)
    with pytest.raises(lora_gguf.UnsupportedAdapterError, match="gemma3"):
        lora_gguf.convert("ok", ok, other, tmp_path / "g.gguf")
    cfg = json.loads((ok / "adapter_config.json").read_text())
    cfg["bias"] = "lora_only"
    (ok / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(lora_gguf.UnsupportedAdapterError, match="biases"):
        lora_gguf.convert("ok", ok, base, tmp_path / "b.gguf")


def test_backend_choice(monkeypatch, tiny_folder):
    monkeypatch.delenv("PUYU_APPS_BACKEND", raising=False)
    monkeypatch.setattr(backend_mod, "available", lambda: True)
    choose = backend_mod.choose_backend
    assert choose("smollm2-135m-instruct", LoadConfig())[0] == "llama.cpp"
    assert choose("smollm2-135m-instruct", LoadConfig(dtype="float32")) == ("transformers",
                                                                           "dtype 'float32' was asked for")
    assert choose("tiny-random-llama", LoadConfig())[1] == "the model is not a GGUF file"
    assert choose(str(tiny_folder), LoadConfig())[0] == "transformers"
    assert choose("smollm2-135m-instruct", LoadConfig(backend="transformers"))[0] == "transformers"
    assert choose("tiny-random-llama", LoadConfig(backend="llama.cpp"))[0] == "llama.cpp"
    monkeypatch.setenv("PUYU_APPS_BACKEND", "transformers")
    assert choose("smollm2-135m-instruct", LoadConfig())[0] == "transformers"
    monkeypatch.setenv("PUYU_APPS_BACKEND", "llama.cpp")
    assert choose("tiny-random-llama", LoadConfig())[0] == "llama.cpp"
    monkeypatch.delenv("PUYU_APPS_BACKEND")
    with pytest.raises(DeviceUnavailableError):
        choose("smollm2-135m-instruct", LoadConfig(backend="llama.cpp", device="cuda"))
    with pytest.raises(ValueError, match="dtype"):
        choose("smollm2-135m-instruct", LoadConfig(backend="llama.cpp", dtype="bfloat16"))
    monkeypatch.setattr(backend_mod, "available", lambda: False)
    assert "not installed" in choose("smollm2-135m-instruct", LoadConfig())[1]
    with pytest.raises(MissingDependencyError, match="puyu_apps\\[fast\\]"):
        choose("smollm2-135m-instruct", LoadConfig(backend="llama.cpp"))
    with pytest.raises(ValueError, match="backend"):
        LoadConfig(backend="vllm")


def test_metrics():
    assert repetition_rate([1, 2, 3, 4, 5, 6]) == 0.0
    assert repetition_rate([1, 2, 3, 4] * 4) == pytest.approx(9 / 13)
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    m = generation_metrics([0.0, 0.1, 0.3, 0.4], [1, 2, 3, 4], "w")
    assert m["itl_p50_s"] == pytest.approx(0.1) and m["itl_p99_s"] == pytest.approx(0.198)
    assert generation_metrics([0.0], [1], "w")["itl_p50_s"] is None


def test_gguf_format_option_is_checked(monkeypatch):
    monkeypatch.delenv("PUYU_APPS_BACKEND", raising=False)
    monkeypatch.setattr(backend_mod, "available", lambda: True)
    with pytest.raises(ValueError, match="gguf_format"):
        LoadConfig(gguf_format="q3_k")
    with pytest.raises(ValueError, match="llama.cpp weight type"):
        backend_mod.choose_backend("smollm2-135m-instruct", LoadConfig(backend="transformers", gguf_format="q8_0"))
    # asking for a GGUF weight type selects llama.cpp under "auto", even for a transformers folder
    assert backend_mod.choose_backend("tiny-random-llama", LoadConfig(gguf_format="q8_0"))[0] == "llama.cpp"
