"""Convert a peft LoRA adapter folder (as ``puyu finetune`` writes it) into a GGUF LoRA adapter for llama.cpp.

Written for this project with the ``gguf`` package; the file layout is the one llama.cpp's loader expects
(``src/llama-adapter.cpp``; the reference converter is llama.cpp's ``convert_lora_to_gguf.py``):

- metadata ``general.type = "adapter"``, ``general.architecture`` = the base model's, ``adapter.type = "lora"``,
  ``adapter.lora.alpha``;
- for each adapted weight ``W`` (GGUF name ``blk.N.attn_q.weight`` ...) two tensors ``<name>.lora_a`` (peft's
  ``lora_A``: ``[r, n_in]``) and ``<name>.lora_b`` (peft's ``lora_B``: ``[n_out, r]``);
- llama.cpp adds ``scale * B (A x)`` with ``scale = alpha / r``; peft's scaling (``lora_alpha / r``, or
  ``/ sqrt(r)`` with rsLoRA, or per-module ``rank_pattern`` / ``alpha_pattern``) is carried exactly: through
  ``alpha`` when it is one value for every module, otherwise folded into ``B`` (and ``alpha = 0``);
- the rows of ``B`` for ``q_proj`` / ``k_proj`` are permuted like the base weights (rotary layout).

What llama.cpp cannot apply is refused with :class:`UnsupportedAdapterError`, never dropped silently: DoRA,
``modules_to_save`` (fully trained copies of layers), LoRA biases, adapters on the embedding or output layers,
base architectures other than the Llama layout.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AdapterError, AdapterMismatchError
from ..paths import cache_dir
from .gguf_model import GgufBase, finish_writing, permute_rows

#: bump when the output layout changes, so cached conversions are redone
CONVERTER_VERSION = 1

# llama.cpp architectures whose LoRA conversion is implemented and tested here
SUPPORTED_ARCHS = ("llama",)


class UnsupportedAdapterError(AdapterError):
    """The adapter is a valid peft adapter, but the llama.cpp backend cannot apply it."""


def _pattern_value(pattern: dict[str, Any], module: str, default: Any) -> Any:
    """peft's rank_pattern / alpha_pattern lookup: a key matches a module name or its dotted suffix (regex)."""
    for key, value in (pattern or {}).items():
        if re.fullmatch(rf"(.*\.)?(?:{key})", module):
            return value
    return default


def _load_tensors(path: Path) -> dict[str, np.ndarray]:
    st = path / "adapter_model.safetensors"
    if st.exists():
        from safetensors.numpy import load_file

        try:
            return {k: np.asarray(v, dtype=np.float32) for k, v in load_file(st).items()}
        except Exception as exc:  # bf16 tensors cannot be read by the numpy loader: go through torch
            try:
                from safetensors.torch import load_file as load_torch

                return {k: v.float().numpy() for k, v in load_torch(st).items()}
            except Exception:
                raise AdapterError(f"could not read {st}: {type(exc).__name__}: {str(exc)[:200]}") from exc
    import torch

    try:
        data = torch.load(path / "adapter_model.bin", map_location="cpu", weights_only=True)
    except Exception as exc:
        raise AdapterError(f"could not read {path / 'adapter_model.bin'}: {exc}") from exc
    return {k: v.float().numpy() for k, v in data.items()}


def check_peft_config(name: str, path: Path, peft_cfg: dict[str, Any], backend: str = "llama.cpp") -> None:
    """Refuse what a LoRA-on-base-weights backend cannot apply, saying why and what to do."""
    why = []
    if peft_cfg.get("use_dora"):
        why.append("it is a DoRA adapter (use_dora=true)")
    if peft_cfg.get("modules_to_save"):
        why.append(f"it saves whole modules ({peft_cfg['modules_to_save']})")
    if peft_cfg.get("bias", "none") not in ("none", None):
        why.append(f"it trains biases (bias={peft_cfg['bias']!r})")
    if peft_cfg.get("layer_replication"):
        why.append("it replicates layers")
    if peft_cfg.get("alora_invocation_tokens") or peft_cfg.get("invocation_string"):
        why.append("it is an activated LoRA (aLoRA)")
    if why:
        raise UnsupportedAdapterError(
            f"adapter {name!r} at {path} cannot run on the {backend} backend: {'; '.join(why)}. "
            f"Load the model with backend='transformers' to use it"
        )


def convert(name: str, path: str | Path, base: GgufBase, out: str | Path, *, n_head: int | None = None,
            n_head_kv: int | None = None) -> Path:
    """Convert the peft adapter folder ``path`` for the base model ``base`` into the GGUF file ``out``.

    Raises :class:`AdapterError` (malformed), :class:`AdapterMismatchError` (does not fit the base) or
    :class:`UnsupportedAdapterError` (valid, but not applicable by llama.cpp).
    """
    import gguf

    from ..core.adapters import read_adapter_meta

    path = Path(path)
    meta = read_adapter_meta(path)
    peft_cfg = meta["peft"]
    check_peft_config(name, path, peft_cfg)
    if base.arch not in SUPPORTED_ARCHS:
        raise UnsupportedAdapterError(
            f"adapter {name!r}: LoRA conversion for llama.cpp architecture {base.arch!r} is not implemented "
            f"(supported: {', '.join(SUPPORTED_ARCHS)}); load the model with backend='transformers'"
        )
    n_head = n_head or base.n_head
    n_head_kv = n_head_kv or base.n_head_kv
    r_default = int(peft_cfg.get("r", 8))
    alpha_default = float(peft_cfg.get("lora_alpha", r_default))
    rslora = bool(peft_cfg.get("use_rslora", False))
    tensors = _load_tensors(path)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, base.n_layer)
    pairs: dict[str, dict[str, Any]] = {}
    for key, arr in tensors.items():
        k = key.removeprefix("base_model.model.")
        m = re.fullmatch(r"(.+)\.lora_(A|B)(?:\.[^.]+)?\.weight", k)
        if m is None:
            if "lora_embedding" in k or "embed_tokens" in k or "lm_head" in k:
                raise UnsupportedAdapterError(
                    f"adapter {name!r} adapts the token embedding or output layer ({key}); the llama.cpp backend "
                    f"cannot apply it: load the model with backend='transformers'")
            raise UnsupportedAdapterError(
                f"adapter {name!r} holds tensor {key!r} that is not a LoRA A/B matrix; the llama.cpp backend "
                f"cannot apply it: load the model with backend='transformers'")
        module, which = m.group(1), m.group(2)
        gname = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if gname is None or gname not in base.shapes:
            raise AdapterMismatchError(
                f"adapter {name!r} at {path} does not fit the base model: it adapts {module!r}, which has no "
                f"counterpart in {base.path.name}")
        if gname in ("token_embd.weight", "output.weight"):
            raise UnsupportedAdapterError(
                f"adapter {name!r} adapts {module!r} (embedding/output layer); the llama.cpp backend cannot "
                f"apply it: load the model with backend='transformers'")
        if arr.ndim != 2:
            raise AdapterError(f"adapter {name!r}: {key} has shape {arr.shape}, expected a matrix")
        pairs.setdefault(gname, {"module": module})[which] = arr
    if not pairs:
        raise AdapterError(f"adapter {name!r} at {path} holds no LoRA weights")

    scales: dict[str, float] = {}
    for gname, p in pairs.items():
        if "A" not in p or "B" not in p:
            raise AdapterError(f"adapter {name!r}: {p['module']} has lora_{'B' if 'A' in p else 'A'} missing")
        a, b = p["A"], p["B"]
        n_out, n_in = base.shapes[gname]
        if a.shape[1] != n_in or b.shape[0] != n_out or a.shape[0] != b.shape[1]:
            raise AdapterMismatchError(
                f"adapter {name!r} at {path} does not fit the base model: {p['module']} has lora_A {a.shape} and "
                f"lora_B {b.shape} but the base weight is [{n_out}, {n_in}]")
        r = a.shape[0]
        module = p["module"]
        alpha = float(_pattern_value(peft_cfg.get("alpha_pattern") or {}, module, alpha_default))
        r_cfg = int(_pattern_value(peft_cfg.get("rank_pattern") or {}, module, r_default))
        if r_cfg != r:
            raise AdapterError(f"adapter {name!r}: {module} has rank {r} but its config says {r_cfg}")
        scales[gname] = alpha / (math.sqrt(r) if rslora else r)

    # one alpha for every module when scale * r agrees everywhere; otherwise fold the scale into B
    alphas = {round(scales[g] * pairs[g]["A"].shape[0], 6) for g in pairs}
    fold = len(alphas) != 1
    gguf_alpha = 0.0 if fold else float(next(iter(alphas)))

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    w = gguf.GGUFWriter(tmp, base.arch)
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, gguf_alpha)
    w.add_string("puyu.adapter_name", name)
    w.add_string("puyu.source", str(path))
    for gname in sorted(pairs):
        a = np.ascontiguousarray(pairs[gname]["A"], dtype=np.float32)
        b = pairs[gname]["B"].astype(np.float32)
        if fold:
            b = b * np.float32(scales[gname])
        if gname.endswith("attn_q.weight"):
            b = permute_rows(b, n_head)
        elif gname.endswith("attn_k.weight"):
            b = permute_rows(b, n_head_kv)
        w.add_tensor(gname + ".lora_a", a)
        w.add_tensor(gname + ".lora_b", np.ascontiguousarray(b))
    return finish_writing(w, tmp, out)


def cached_convert(name: str, path: str | Path, base: GgufBase, base_fingerprint: str) -> Path:
    """:func:`convert` into the cache, keyed by the adapter's files and the base model: a second load of the
    same adapter for the same base reads the earlier file."""
    path = Path(path)
    h = hashlib.sha256(f"v{CONVERTER_VERSION}:{base_fingerprint}:{base.arch}".encode())
    for f in sorted(path.iterdir()) if path.is_dir() else []:
        if f.name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    out = cache_dir() / "lora_gguf" / f"{h.hexdigest()[:24]}.gguf"
    if out.exists():
        return out
    return convert(name, path, base, out)


def _read_lora(path: Path) -> tuple[str, float, dict[str, np.ndarray]]:
    """(architecture, alpha, {tensor name: array}) of a GGUF LoRA file."""
    import gguf

    reader = gguf.GGUFReader(path)
    fields = reader.fields
    arch = str(fields["general.architecture"].contents())
    alpha = float(fields[gguf.Keys.Adapter.LORA_ALPHA].contents()) if gguf.Keys.Adapter.LORA_ALPHA in fields else 0.0
    tensors = {}
    for t in reader.tensors:
        if t.tensor_type not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            raise AdapterError(f"{path}: LoRA tensor {t.name} is {t.tensor_type.name}; only F32/F16 can be combined")
        tensors[t.name] = np.asarray(t.data, dtype=np.float32).reshape([int(x) for x in reversed(t.shape)])
    return arch, alpha, tensors


def combine(paths: list[Path], out: str | Path, dtype: str = "f32") -> list[int]:
    """Write one GGUF LoRA ``out`` holding the adapters ``paths`` (GGUF LoRA files, as :func:`convert` writes them)
    side by side, for llama.cpp's masked mode (``scripts/patches/lora_mask.py``): for every adapted weight, the A
    matrices stacked (``[R, n_in]``) and the B matrices side by side (``[n_out, R]``), adapter ``i`` on rows
    ``offsets[i] : offsets[i + 1]``. Each adapter's scale (``alpha / r``) is folded into its B, so a row mask of 1
    on an adapter's rows applies exactly that adapter; a weight an adapter does not touch gets zeros there, and an
    adapter's block is as wide as its largest rank. ``dtype``: ``"f32"`` (the engine's: logits equal to the plain
    adapters') or ``"f16"`` (1-2 % faster decode steps, but ggml then rounds the activations to f16 as well and
    2.6-5.8 % of next tokens change; ``benchmarks/engine_lora_step.py`` measures both). Returns the offsets
    (``len(paths) + 1`` values, the last R)."""
    import gguf

    loaded = [_read_lora(Path(p)) for p in paths]
    archs = {arch for arch, _, _ in loaded}
    if len(archs) != 1:
        raise AdapterError(f"cannot combine LoRA adapters of different architectures: {sorted(archs)}")
    widths = [max(a.shape[0] for n, a in ts.items() if n.endswith(".lora_a")) for _, _, ts in loaded]
    offsets = [0]
    for w in widths:
        offsets.append(offsets[-1] + w)
    total = offsets[-1]
    names = sorted({n.removesuffix(".lora_a") for _, _, ts in loaded for n in ts if n.endswith(".lora_a")})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    w = gguf.GGUFWriter(tmp, archs.pop())
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 0.0)  # scales are folded into B
    w.add_string("puyu.combined_from", json.dumps([Path(p).name for p in paths]))
    w.add_array("puyu.combined_offsets", offsets)
    for name in names:
        shape_a = next(ts[name + ".lora_a"].shape for _, _, ts in loaded if name + ".lora_a" in ts)
        shape_b = next(ts[name + ".lora_b"].shape for _, _, ts in loaded if name + ".lora_b" in ts)
        a = np.zeros((total, shape_a[1]), dtype=np.float32)
        b = np.zeros((shape_b[0], total), dtype=np.float32)
        for (_, alpha, ts), off in zip(loaded, offsets):
            if name + ".lora_a" not in ts:
                continue
            la, lb = ts[name + ".lora_a"], ts[name + ".lora_b"]
            r = la.shape[0]
            if la.shape[1] != shape_a[1] or lb.shape[0] != shape_b[0] or lb.shape[1] != r:
                raise AdapterError(f"cannot combine LoRA adapters: {name} has shapes {la.shape} / {lb.shape} in one "
                                   f"and {shape_a} / {shape_b} in another")
            a[off:off + r] = la
            b[:, off:off + r] = lb * np.float32(alpha / r if alpha else 1.0)  # llama.cpp's scale, folded
        store = {"f32": np.float32, "f16": np.float16}[dtype]
        w.add_tensor(name + ".lora_a", a.astype(store))
        w.add_tensor(name + ".lora_b", np.ascontiguousarray(b.astype(store)))
    finish_writing(w, tmp, out)
    return offsets


def describe(path: str | Path) -> dict[str, Any]:
    """Metadata and tensor shapes of a GGUF LoRA file (for tests and ``puyu info``)."""
    import gguf

    reader = gguf.GGUFReader(path)
    meta = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    meta["tensors"] = {t.name: tuple(int(x) for x in reversed(t.shape)) for t in reader.tensors}
    return json.loads(json.dumps(meta, default=str))
