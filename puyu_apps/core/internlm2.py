"""InternLM2 checkpoints, loaded through the Llama code of transformers.

InternLM2's modelling code ships only as remote code, and with transformers 5 its ``generate`` and
``save_pretrained`` break. Its weights are a re-labelled Llama with the q/k/v projections fused into one ``wqkv``
matrix, so we convert the checkpoint once (weights relabelled and ``wqkv`` split per head group) and load it as
``LlamaForCausalLM``: no remote code runs, and every transformers feature works.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelLoadError

_RENAMES = {
    "attention.wo.": "self_attn.o_proj.",
    "feed_forward.w1.": "mlp.gate_proj.",
    "feed_forward.w3.": "mlp.up_proj.",
    "feed_forward.w2.": "mlp.down_proj.",
    "attention_norm.": "input_layernorm.",
    "ffn_norm.": "post_attention_layernorm.",
}


def is_internlm2(folder: Path) -> bool:
    try:
        return json.loads((folder / "config.json").read_text()).get("model_type") == "internlm2"
    except (OSError, ValueError):
        return False


def llama_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Map an InternLM2 ``config.json`` onto a Llama one."""
    heads = cfg["num_attention_heads"]
    out = {
        "model_type": "llama", "architectures": ["LlamaForCausalLM"],
        "vocab_size": cfg["vocab_size"], "hidden_size": cfg["hidden_size"],
        "intermediate_size": cfg["intermediate_size"], "num_hidden_layers": cfg["num_hidden_layers"],
        "num_attention_heads": heads, "num_key_value_heads": cfg.get("num_key_value_heads") or heads,
        "head_dim": cfg["hidden_size"] // heads, "hidden_act": cfg.get("hidden_act", "silu"),
        "max_position_embeddings": cfg.get("max_position_embeddings", 2048),
        "rms_norm_eps": cfg.get("rms_norm_eps", 1e-6), "attention_bias": bool(cfg.get("bias", False)),
        "mlp_bias": False, "tie_word_embeddings": bool(cfg.get("tie_word_embeddings", False)),
        "bos_token_id": cfg.get("bos_token_id"), "eos_token_id": cfg.get("eos_token_id"),
        "pad_token_id": cfg.get("pad_token_id"),
    }
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": float(cfg.get("rope_theta", 10000.0))}
    scaling = cfg.get("rope_scaling")
    if scaling:
        kind = scaling.get("type") or scaling.get("rope_type")
        if kind not in ("linear", "dynamic"):
            raise ModelLoadError(f"InternLM2 rope_scaling type {kind!r} is not supported (linear, dynamic are)")
        rope.update(rope_type=kind, factor=float(scaling["factor"]))
    out["rope_parameters"] = rope
    return out


def convert_state_dict(state: dict[str, torch.Tensor], cfg: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Relabel InternLM2 tensors as Llama tensors; split ``wqkv`` (and its bias) into q, k, v."""
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or heads
    group, head_dim = heads // kv, cfg["hidden_size"] // heads
    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        if name == "model.tok_embeddings.weight":
            out["model.embed_tokens.weight"] = t
        elif name == "output.weight":
            out["lm_head.weight"] = t
        elif ".attention.wqkv." in name:
            prefix = name.split("attention.wqkv.")[0] + "self_attn."
            kind = name.rsplit(".", 1)[1]  # weight | bias
            # rows are grouped per kv head: [q_0 .. q_{g-1}, k, v] x head_dim
            w = t.reshape(kv, group + 2, head_dim, *t.shape[1:])
            out[f"{prefix}q_proj.{kind}"] = w[:, :group].reshape(kv * group * head_dim, *t.shape[1:]).clone()
            out[f"{prefix}k_proj.{kind}"] = w[:, group].reshape(kv * head_dim, *t.shape[1:]).clone()
            out[f"{prefix}v_proj.{kind}"] = w[:, group + 1].reshape(kv * head_dim, *t.shape[1:]).clone()
        else:
            for old, new in _RENAMES.items():
                if old in name:
                    name = name.replace(old, new)
                    break
            out[name] = t
    return out


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        raise ModelLoadError(f"{folder} has no *.safetensors or pytorch_model*.bin weights")
    for f in files:
        try:
            part = load_file(f) if f.suffix == ".safetensors" else torch.load(f, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelLoadError(f"could not read InternLM2 weights {f}: {type(exc).__name__}: {exc}") from exc
        state.update(part)
    return state


def convert_folder(src: Path, out: Path, trust_remote_code: bool = False) -> Path:
    """Convert the InternLM2 checkpoint in ``src`` into a Llama folder ``out`` (cached: done once)."""
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, LlamaConfig

    stamp = {"src": str(src.resolve()), "size": sum(f.stat().st_size for f in src.iterdir() if f.is_file())}
    mark = out / "puyu_source.json"
    if mark.exists() and json.loads(mark.read_text()) == stamp:
        return out
    cfg = json.loads((src / "config.json").read_text())
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = convert_state_dict(_read_weights(src), cfg)
    LlamaConfig(**llama_config(cfg)).save_pretrained(tmp)
    save_file({k: v.contiguous() for k, v in state.items()}, tmp / "model.safetensors", metadata={"format": "pt"})
    try:
        AutoTokenizer.from_pretrained(src, trust_remote_code=trust_remote_code).save_pretrained(tmp)
    except Exception as exc:
        raise ModelLoadError(
            f"the InternLM2 tokenizer in {src} could not be loaded ({type(exc).__name__}: {str(exc)[:200]}); "
            f"InternLM2 ships its tokenizer as remote code: pass trust_remote_code=True if you trust it"
        ) from exc
    mark_tmp = tmp / "puyu_source.json"
    mark_tmp.write_text(json.dumps(stamp))
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return out
