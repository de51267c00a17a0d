"""The weights of a Llama-layout model in the static engine's layout, read from a loaded transformers model.

Layout (per layer): ``qkv`` = the q, k and v projections fused row-wise (one matmul), ``o``, ``gate_up`` = gate
and up fused row-wise, ``down``; the two RMSNorm weights. Biases (Qwen2's q/k/v, InternLM3's ``qkv_bias``/``bias``)
are read from the state dict when present. Tied embeddings share one tensor (except under int8, where the output
layer gets its own quantized copy).

Supported: ``model_type`` in :data:`SUPPORTED_MODEL_TYPES` (``internlm3`` is Llama code in transformers), SiLU
MLPs, rotary scaling types with fixed frequencies (:data:`SUPPORTED_ROPE_TYPES`). Anything else raises
:class:`~puyu_apps.engine.static.errors.UnsupportedModelError` naming the field and ``backend="transformers"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from . import SUPPORTED_MODEL_TYPES
from .errors import UnsupportedModelError
from .quant import Int8Matmul, quantize_int8

#: rotary types whose frequencies do not depend on the sequence length (computed once for the whole cache)
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3", "yarn")
WeightFormat = Literal["auto", "int8"]


@dataclass(frozen=True)
class ModelArch:
    """The shape of a Llama-layout model."""

    model_type: str
    vocab_size: int
    hidden_size: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate_size: int
    rms_eps: float
    rope_type: str
    rope_theta: float
    max_position: int
    tie_embeddings: bool

    @property
    def q_size(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.n_kv_heads * self.head_dim


def _unsupported(what: str) -> UnsupportedModelError:
    return UnsupportedModelError(f"the torch static engine cannot run this model: {what}; "
                                 f"load it with backend='transformers'")


def rope_parameters(config: Any) -> dict[str, Any]:
    """The rotary parameters of a config (transformers 5 ``rope_parameters``, or the older ``rope_theta`` and
    ``rope_scaling`` fields)."""
    params = getattr(config, "rope_parameters", None)
    if params is None:
        params = dict(getattr(config, "rope_scaling", None) or {})
        params.setdefault("rope_theta", getattr(config, "rope_theta", 10000.0))
    params = dict(params)
    if params and all(isinstance(v, dict) for v in params.values()):
        raise _unsupported("per-layer rotary parameters (layer types with their own RoPE)")
    params.setdefault("rope_type", params.get("type", "default"))
    params.setdefault("rope_theta", getattr(config, "rope_theta", 10000.0))
    return params


def arch_from_config(config: Any) -> ModelArch:
    """Read and check a transformers config. Raises :class:`UnsupportedModelError` for what we cannot run."""
    mt = getattr(config, "model_type", "")
    if mt not in SUPPORTED_MODEL_TYPES:
        raise _unsupported(f"model_type {mt!r} is not one of {SUPPORTED_MODEL_TYPES}")
    act = getattr(config, "hidden_act", "silu")
    if act not in ("silu", "swish"):
        raise _unsupported(f"hidden_act {act!r} (only SiLU/SwiGLU MLPs)")
    if getattr(config, "use_sliding_window", False) or (mt == "mistral" and getattr(config, "sliding_window", None)):
        raise _unsupported("sliding-window attention")
    if any(t != "full_attention" for t in (getattr(config, "layer_types", None) or [])):
        raise _unsupported("layers with sliding-window attention")
    if getattr(config, "pretraining_tp", 1) not in (1, None):
        raise _unsupported(f"pretraining_tp={config.pretraining_tp}")
    rope = rope_parameters(config)
    if rope["rope_type"] not in SUPPORTED_ROPE_TYPES:
        raise _unsupported(f"rotary scaling type {rope['rope_type']!r} changes with the sequence length "
                           f"(supported: {', '.join(SUPPORTED_ROPE_TYPES)})")
    n_heads = int(config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // n_heads)
    return ModelArch(
        model_type=mt, vocab_size=int(config.vocab_size), hidden_size=int(config.hidden_size),
        n_layers=int(config.num_hidden_layers), n_heads=n_heads,
        n_kv_heads=int(getattr(config, "num_key_value_heads", None) or n_heads), head_dim=head_dim,
        intermediate_size=int(config.intermediate_size), rms_eps=float(config.rms_norm_eps),
        rope_type=str(rope["rope_type"]), rope_theta=float(rope["rope_theta"]),
        max_position=int(getattr(config, "max_position_embeddings", 2048) or 2048),
        tie_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
    )


def rope_tables(config: Any, arch: ModelArch, max_len: int, device: torch.device,
                dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos, sin)``, each ``[max_len, head_dim]`` in ``dtype``, computed exactly as transformers does (fp32
    ``position * inv_freq``, the scaling type's attention factor, then a cast)."""
    if arch.rope_type == "default":
        inv_freq = 1.0 / (arch.rope_theta ** (torch.arange(0, arch.head_dim, 2, dtype=torch.float) / arch.head_dim))
        factor = 1.0
    else:
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

        inv_freq, factor = ROPE_INIT_FUNCTIONS[arch.rope_type](config, torch.device("cpu"))
    pos = torch.arange(max_len, dtype=torch.float)
    freqs = pos[:, None] * inv_freq.float()[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos() * factor, emb.sin() * factor
    return cos.to(device=device, dtype=dtype), sin.to(device=device, dtype=dtype)


@dataclass
class Linear:
    """One (possibly fused) projection: ``weight [out, in]`` in the model dtype, or int8 with ``scale [out]``;
    ``parts`` names the fused row blocks in order (for LoRA), with their sizes."""

    weight: torch.Tensor
    bias: torch.Tensor | None = None
    scale: torch.Tensor | None = None
    parts: tuple[tuple[str, int], ...] = ()
    int8_matmul: Int8Matmul = "dequant"

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    def dense(self) -> torch.Tensor:
        """The weight in the model dtype (dequantized when int8)."""
        if self.scale is None:
            return self.weight
        return self.weight.to(self.scale.dtype) * self.scale[:, None]

    def set_dense(self, w: torch.Tensor) -> None:
        """Replace the weight (re-quantized when this projection is int8)."""
        if self.scale is None:
            self.weight = w.contiguous()
        else:
            self.weight, self.scale = quantize_int8(w)

    def nbytes(self) -> int:
        n = self.weight.numel() * self.weight.element_size()
        return n + sum(t.numel() * t.element_size() for t in (self.bias, self.scale) if t is not None)


@dataclass
class Layer:
    attn_norm: torch.Tensor
    qkv: Linear
    o: Linear
    mlp_norm: torch.Tensor
    gate_up: Linear
    down: Linear

    def linears(self) -> dict[str, Linear]:
        return {"qkv": self.qkv, "o": self.o, "gate_up": self.gate_up, "down": self.down}


#: peft module name -> (our fused projection, its row block)
MODULE_TO_LINEAR = {
    "q_proj": "qkv", "k_proj": "qkv", "v_proj": "qkv", "o_proj": "o",
    "gate_proj": "gate_up", "up_proj": "gate_up", "down_proj": "down",
}


@dataclass
class StaticWeights:
    arch: ModelArch
    embed: torch.Tensor  # [vocab, hidden]
    layers: list[Layer]
    norm: torch.Tensor
    lm_head: Linear
    cos: torch.Tensor  # [max_len, head_dim]
    sin: torch.Tensor
    dtype: torch.dtype
    device: torch.device
    weights: str = "auto"  # "auto" (the model dtype) or "int8"
    extra: dict[str, Any] = field(default_factory=dict)

    def nbytes(self) -> int:
        """Bytes of weights a decode step reads (every projection, the norms, the output layer)."""
        n = self.lm_head.nbytes() + self.norm.numel() * self.norm.element_size()
        for layer in self.layers:
            n += sum(lin.nbytes() for lin in layer.linears().values())
            n += 2 * layer.attn_norm.numel() * layer.attn_norm.element_size()
        return n


def _get(sd: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    try:
        return sd[key]
    except KeyError:
        raise _unsupported(f"the state dict has no {key!r} (not the Llama layout)") from None


def _fused(sd: dict[str, torch.Tensor], prefix: str, names: tuple[str, ...], dtype: torch.dtype,
           device: torch.device, int8: Int8Matmul | None) -> Linear:
    ws = [_get(sd, f"{prefix}.{n}.weight") for n in names]
    bs = [sd.get(f"{prefix}.{n}.bias") for n in names]
    w = torch.cat(ws, 0).to(device=device, dtype=dtype) if len(ws) > 1 else ws[0].to(device=device, dtype=dtype)
    bias = None
    if any(b is not None for b in bs):
        bias = torch.cat([b if b is not None else torch.zeros(wi.shape[0]) for b, wi in zip(bs, ws)])
        bias = bias.to(device=device, dtype=dtype)
    parts = tuple((n, wi.shape[0]) for n, wi in zip(names, ws))
    lin = Linear(weight=w.contiguous(), bias=bias, parts=parts)
    if int8 is not None:
        lin.weight, lin.scale = quantize_int8(lin.weight)
        lin.int8_matmul = int8
    return lin


def from_transformers(model: Any, *, max_len: int, dtype: torch.dtype | None = None,
                      device: torch.device | str | None = None, weights: WeightFormat = "auto",
                      int8_matmul: Int8Matmul | None = None) -> StaticWeights:
    """Our layout of ``model`` (a transformers ``*ForCausalLM``; a peft wrapper is refused: merge or load the
    adapter through the engine). ``dtype``/``device`` default to the model's; ``weights="int8"`` quantizes
    every projection and the output layer per output channel."""
    from .quant import default_int8_matmul

    arch = arch_from_config(model.config)
    p = next(model.parameters())
    dtype = dtype or p.dtype
    device = torch.device(device) if device is not None else p.device
    if weights not in ("auto", "int8"):
        raise ValueError(f"weights must be 'auto' or 'int8', got {weights!r}")
    int8 = (int8_matmul or default_int8_matmul(device, dtype)) if weights == "int8" else None
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    if any("lora_" in k or "base_layer" in k for k in sd):
        raise _unsupported("the transformers model carries peft adapters; build from the base model and load "
                           "adapters with StaticLanguageModel.load_adapter")
    sd = {k.removeprefix("model."): v for k, v in sd.items()}

    def t(key: str) -> torch.Tensor:
        return _get(sd, key).to(device=device, dtype=dtype).contiguous()

    layers = []
    for i in range(arch.n_layers):
        pre = f"layers.{i}"
        layers.append(Layer(
            attn_norm=t(f"{pre}.input_layernorm.weight"),
            qkv=_fused(sd, f"{pre}.self_attn", ("q_proj", "k_proj", "v_proj"), dtype, device, int8),
            o=_fused(sd, f"{pre}.self_attn", ("o_proj",), dtype, device, int8),
            mlp_norm=t(f"{pre}.post_attention_layernorm.weight"),
            gate_up=_fused(sd, f"{pre}.mlp", ("gate_proj", "up_proj"), dtype, device, int8),
            down=_fused(sd, f"{pre}.mlp", ("down_proj",), dtype, device, int8),
        ))
        if any(f"{pre}.self_attn.{n}.weight" in sd for n in ("q_norm", "k_norm")):
            raise _unsupported("per-head q/k norms (Qwen3-style attention)")
    embed = t("embed_tokens.weight")
    head_key = "lm_head.weight" if "lm_head.weight" in sd else None
    if head_key is None or arch.tie_embeddings:
        head = Linear(weight=embed)
    else:
        head = Linear(weight=t(head_key))
    if int8 is not None:
        q, s = quantize_int8(head.weight)
        head = Linear(weight=q, scale=s, int8_matmul=int8)
    cos, sin = rope_tables(model.config, arch, max_len, device, dtype)
    return StaticWeights(arch=arch, embed=embed, layers=layers, norm=t("norm.weight"), lm_head=head, cos=cos,
                         sin=sin, dtype=dtype, device=device, weights=weights)
