"""peft LoRA adapters for the static engine: several adapters in one batch (BGMV style).

Each adapter is read from its peft folder into ``(A [r, in], B [out, r] * scaling)`` per adapted module, with
peft's scaling carried exactly as peft computes it (``lora_alpha / r``, ``/ sqrt(r)`` under rsLoRA, per-module
``rank_pattern`` / ``alpha_pattern``) and folded into B. For every projection of our layout (q/k/v fused, o,
gate/up fused, down) the loaded adapters are stacked:

    A [n_index, R, in]    B [n_index, out, R]       index 0 = no adapter (zeros)

where ``R`` is the sum over the fused row blocks of the largest rank any adapter uses on that block, and B is
block-structured (an adapter on q only has zeros in the k/v rows). Each batch row carries an adapter index; the
delta of a decode step is two batched matmuls on the gathered A/B (:func:`lora_delta`); a prompt (one adapter)
uses the adapter's rows directly (:func:`lora_delta_one`). A base-model row gets an exact zero delta, so base
requests are unchanged by adapters decoding in the same batch.

What this cannot apply is refused with :class:`~puyu_apps.engine.lora_gguf.UnsupportedAdapterError`: DoRA,
``modules_to_save``, trained biases, LoRA on the embedding or output layer, layer replication, aLoRA.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...errors import AdapterError, AdapterMismatchError
from ..lora_gguf import UnsupportedAdapterError, _load_tensors, _pattern_value, check_peft_config
from .weights import MODULE_TO_LINEAR, Layer, ModelArch, StaticWeights

_KEY = re.compile(r"(?:.*\.)?layers\.(\d+)\.(?:self_attn|mlp)\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|"
                  r"down_proj)\.lora_(A|B)(?:\.[^.]+)?\.weight")


@dataclass
class AdapterTensors:
    """One adapter: ``modules[(layer, peft module name)] = (A [r, in], B [out, r] * scaling)`` in float32."""

    name: str
    path: Path
    modules: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)


def read_adapter(name: str, path: str | Path, arch: ModelArch, layers: list[Layer]) -> AdapterTensors:
    """Read and check a peft LoRA folder against our weights. Raises :class:`AdapterError`,
    :class:`AdapterMismatchError` or :class:`UnsupportedAdapterError`."""
    from ...core.adapters import read_adapter_meta

    path = Path(path)
    peft_cfg = read_adapter_meta(path)["peft"]
    check_peft_config(name, path, peft_cfg, backend="torch-static")
    r_default = int(peft_cfg.get("r", 8))
    alpha_default = float(peft_cfg.get("lora_alpha", r_default))
    rslora = bool(peft_cfg.get("use_rslora", False))
    pairs: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    paths: dict[tuple[int, str], str] = {}
    for key, arr in _load_tensors(path).items():
        m = _KEY.fullmatch(key)
        if m is None:
            if "lora_embedding" in key or "embed_tokens" in key or "lm_head" in key:
                raise UnsupportedAdapterError(
                    f"adapter {name!r} adapts the token embedding or output layer ({key}); the torch-static "
                    f"backend cannot apply it: load the model with backend='transformers'")
            raise UnsupportedAdapterError(
                f"adapter {name!r} holds tensor {key!r} that is not a LoRA A/B matrix of a q/k/v/o/gate/up/down "
                f"projection; the torch-static backend cannot apply it: load the model with "
                f"backend='transformers'")
        layer, module, which = int(m.group(1)), m.group(2), m.group(3)
        if layer >= arch.n_layers:
            raise AdapterMismatchError(f"adapter {name!r} at {path} adapts layer {layer}, but the base model has "
                                       f"{arch.n_layers} layers")
        pairs.setdefault((layer, module), {})[which] = torch.from_numpy(arr).float()
        paths[(layer, module)] = key.split(".lora_")[0].removeprefix("base_model.model.")
    if not pairs:
        raise AdapterError(f"adapter {name!r} at {path} holds no LoRA weights")
    out = AdapterTensors(name=name, path=path)
    for (layer, module), p in sorted(pairs.items()):
        if "A" not in p or "B" not in p:
            raise AdapterError(f"adapter {name!r}: layer {layer} {module} has lora_{'B' if 'A' in p else 'A'} "
                               f"missing")
        a, b = p["A"], p["B"]
        lin = layers[layer].linears()[MODULE_TO_LINEAR[module]]
        n_out = dict(lin.parts)[module]
        n_in = lin.in_features
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != n_in or b.shape[0] != n_out or a.shape[0] != b.shape[1]:
            raise AdapterMismatchError(
                f"adapter {name!r} at {path} does not fit the base model: layer {layer} {module} has lora_A "
                f"{tuple(a.shape)} and lora_B {tuple(b.shape)} but the base weight is [{n_out}, {n_in}]")
        r = a.shape[0]
        full = paths[(layer, module)]
        alpha = float(_pattern_value(peft_cfg.get("alpha_pattern") or {}, full, alpha_default))
        r_cfg = int(_pattern_value(peft_cfg.get("rank_pattern") or {}, full, r_default))
        if r_cfg != r:
            raise AdapterError(f"adapter {name!r}: {full} has rank {r} but its config says {r_cfg}")
        scaling = alpha / (math.sqrt(r) if rslora else r)
        out.modules[(layer, module)] = (a.contiguous(), (b * scaling).contiguous())
    return out


@dataclass
class LoraStack:
    """The stacked adapters of one projection: ``a [n_index, R, in]``, ``b [n_index, out, R]``."""

    a: torch.Tensor
    b: torch.Tensor


@dataclass
class LoraBank:
    """Every projection's :class:`LoraStack` (None where no adapter adapts it); ``n_index`` rows (0 = none)."""

    n_index: int
    layers: list[dict[str, LoraStack | None]]


def build_bank(adapters: dict[int, AdapterTensors], weights: StaticWeights) -> LoraBank | None:
    """Stack ``adapters`` (bank index -> tensors; index 0 is reserved for "no adapter") for ``weights``."""
    if not adapters:
        return None
    n_index = max(adapters) + 1
    dtype, device = weights.dtype, weights.device
    layers: list[dict[str, LoraStack | None]] = []
    for li, layer in enumerate(weights.layers):
        stacks: dict[str, LoraStack | None] = {}
        for lname, lin in layer.linears().items():
            ranks = [max((ad.modules[(li, part)][0].shape[0] for ad in adapters.values()
                          if (li, part) in ad.modules), default=0) for part, _ in lin.parts]
            total = sum(ranks)
            if total == 0:
                stacks[lname] = None
                continue
            a = torch.zeros(n_index, total, lin.in_features)
            b = torch.zeros(n_index, lin.out_features, total)
            for idx, ad in adapters.items():
                r_off, row_off = 0, 0
                for (part, n_out), r_max in zip(lin.parts, ranks):
                    if (li, part) in ad.modules:
                        pa, pb = ad.modules[(li, part)]
                        r = pa.shape[0]
                        a[idx, r_off:r_off + r] = pa
                        b[idx, row_off:row_off + n_out, r_off:r_off + r] = pb
                    r_off += r_max
                    row_off += n_out
            stacks[lname] = LoraStack(a=a.to(device=device, dtype=dtype).contiguous(),
                                      b=b.to(device=device, dtype=dtype).contiguous())
        layers.append(stacks)
    return LoraBank(n_index=n_index, layers=layers)


def lora_delta(x: torch.Tensor, stack: LoraStack, idx: torch.Tensor) -> torch.Tensor:
    """BGMV: row ``t`` of ``x [T, in]`` through adapter ``idx[t]``: ``B[idx] (A[idx] x)`` -> ``[T, out]``.
    Two batched matmuls on the gathered matrices (static shapes; on GPU a fused kernel such as punica's
    ``bgmv`` goes here)."""
    h = torch.bmm(stack.a[idx], x.unsqueeze(-1))  # [T, R, 1]
    return torch.bmm(stack.b[idx], h).squeeze(-1)  # [T, out]


def lora_delta_one(x: torch.Tensor, stack: LoraStack, index: int) -> torch.Tensor:
    """Every row of ``x [T, in]`` through one adapter (a prompt): ``(x A^T) B^T``."""
    return (x @ stack.a[index].T) @ stack.b[index].T


def merge_into(weights: StaticWeights, adapter: AdapterTensors) -> None:
    """Fold ``adapter`` into the base projections (int8 projections are re-quantized)."""
    for (li, module), (a, b) in adapter.modules.items():
        lin = weights.layers[li].linears()[MODULE_TO_LINEAR[module]]
        offset = 0
        for part, n_out in lin.parts:
            if part == module:
                break
            offset += n_out
        n_out = dict(lin.parts)[module]
        w = lin.dense().float().clone()
        w[offset:offset + n_out] += (b @ a).to(w.device)
        lin.set_dense(w.to(weights.dtype))
