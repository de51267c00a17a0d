"""GGUF model files for the llama.cpp backend: read what a base model file holds, and write one from a
transformers Llama-architecture model (tiny random test models, local folders).

Only the ``gguf`` package is used here (no llama.cpp): the layout follows llama.cpp's own converter
(``convert_hf_to_gguf.py``): tensor names from ``gguf.TensorNameMap``, the rows of ``q_proj``/``k_proj`` permuted
from the Hugging Face rotary layout (two halves) to llama.cpp's (interleaved pairs).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelLoadError

#: transformers model types whose weights are the Llama layout and run as llama.cpp's "llama" architecture
LLAMA_LAYOUT = ("llama", "internlm3", "mistral")


def permute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """Hugging Face rotary layout -> llama.cpp's, on the output rows of a q/k projection (or a LoRA B)."""
    rows = w.shape[0]
    return (w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


@dataclass
class GgufBase:
    """What a base GGUF model file holds, read from its header (no weights are loaded)."""

    path: Path
    arch: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_ctx_train: int
    n_vocab: int
    #: tensor name -> (n_out, n_in) for the 2-D weights, in torch order
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    #: ggml type name -> number of tensors of that type (e.g. {"Q4_1": 210, "F32": 61, "Q8_0": 1})
    types: dict[str, int] = field(default_factory=dict)

    @property
    def weight_format(self) -> str:
        """The type of the 2-D weights, e.g. ``"Q4_1"``; a token embedding of another type is named too:
        ``"Q4_1 (token embedding Q8_0)"``."""
        mats: dict[str, int] = {}
        for name, shape in self.shapes.items():
            if len(shape) == 2 and name != "token_embd.weight":
                t = self.tensor_types[name]
                mats[t] = mats.get(t, 0) + 1
        main = max(mats, key=lambda k: mats[k]) if mats else "F32"
        emb = self.tensor_types.get("token_embd.weight", main)
        return main if emb == main else f"{main} (token embedding {emb})"

    tensor_types: dict[str, str] = field(default_factory=dict, repr=False)


def read_base(path: str | Path) -> GgufBase:
    """Read the header of a GGUF model file. Raises :class:`ModelLoadError` on a file that is not one."""
    import gguf

    path = Path(path)
    try:
        reader = gguf.GGUFReader(path)
    except Exception as exc:  # the reader raises ValueError, struct errors, OSError... on a bad file
        raise ModelLoadError(f"{path} is not a readable GGUF file: {type(exc).__name__}: {str(exc)[:200]}") from exc

    def field_value(key: str, default: Any = None) -> Any:
        f = reader.fields.get(key)
        if f is None:
            return default
        return f.contents()

    gtype = field_value("general.type", "model")
    if gtype != "model":
        raise ModelLoadError(f"{path} is a GGUF {gtype!r} file, not a model")
    arch = field_value("general.architecture")
    if not arch:
        raise ModelLoadError(f"{path} has no general.architecture: not a GGUF model file")
    shapes: dict[str, tuple[int, ...]] = {}
    types: dict[str, int] = {}
    ttypes: dict[str, str] = {}
    n_vocab = 0
    for t in reader.tensors:
        tname = t.tensor_type.name
        types[tname] = types.get(tname, 0) + 1
        ttypes[t.name] = tname
        ne = [int(x) for x in t.shape]
        shapes[t.name] = tuple(reversed(ne))
        if t.name == "token_embd.weight":
            n_vocab = ne[1]
    return GgufBase(
        path=path, arch=str(arch), n_layer=int(field_value(f"{arch}.block_count", 0)),
        n_embd=int(field_value(f"{arch}.embedding_length", 0)),
        n_head=int(field_value(f"{arch}.attention.head_count", 0)),
        n_head_kv=int(field_value(f"{arch}.attention.head_count_kv", 0) or field_value(
            f"{arch}.attention.head_count", 0)),
        n_ctx_train=int(field_value(f"{arch}.context_length", 0)),
        n_vocab=int(field_value(f"{arch}.vocab_size", 0) or n_vocab), shapes=shapes, types=types,
        tensor_types=ttypes,
    )


def embedding_rows(path: str | Path, rows: int = 32) -> np.ndarray:
    """The first ``rows`` rows of the token embedding, dequantized to float32 ([rows, n_embd])."""
    import gguf

    reader = gguf.GGUFReader(path)
    for t in reader.tensors:
        if t.name == "token_embd.weight":
            data = np.asarray(t.data)
            n = min(rows, data.shape[0])
            return np.asarray(gguf.quants.dequantize(data[:n], t.tensor_type), dtype=np.float32)
    raise ModelLoadError(f"{path} has no token_embd.weight tensor")


def fingerprint(config: Any, embedding_head: np.ndarray) -> str:
    """The same value as :func:`puyu_apps.core.adapters.base_fingerprint` of the transformers model, computed
    from the config and the first rows of the embedding (so adapters are checked without loading the weights)."""
    arch = {k: getattr(config, k, None) for k in (
        "model_type", "hidden_size", "num_hidden_layers", "vocab_size", "intermediate_size", "num_attention_heads",
    )}
    rows = min(32, embedding_head.shape[0])
    signs = (embedding_head[:rows, :32] > 0).flatten().astype(np.uint8).tobytes()
    return hashlib.sha256(json.dumps(arch, sort_keys=True).encode() + signs).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------------------
# writing a GGUF model from a transformers model

_FTYPES = {"f32": 0, "f16": 1, "q8_0": 7, "q4_0": 2, "q4_1": 3, "q5_0": 8}


def _rope_theta(cfg: Any) -> float:
    params = getattr(cfg, "rope_parameters", None) or {}
    theta = params.get("rope_theta") if isinstance(params, dict) else None
    if theta is None:
        theta = getattr(cfg, "rope_theta", 10000.0)
    rope_type = params.get("rope_type", "default") if isinstance(params, dict) else "default"
    if rope_type not in ("default", None):
        raise ModelLoadError(f"rope scaling {rope_type!r} is not supported by the GGUF export; use the "
                             f"transformers backend for this model")
    return float(theta)


def export_model(model: Any, out: str | Path, *, ftype: str = "f32", name: str = "",
                 embedding_ftype: str | None = None) -> Path:
    """Write a transformers Llama-architecture model as a GGUF model file llama.cpp can run.

    The file carries no tokenizer (``tokenizer.ggml.model = "none"``): the llama.cpp backend tokenizes and
    detokenizes with the model's Hugging Face tokenizer, exactly as the transformers path does.
    ``ftype``: ``"f32"``, ``"f16"``, ``"q8_0"``, ``"q5_0"``, ``"q4_0"`` or ``"q4_1"`` for the 2-D weights (norms
    stay f32).
    ``embedding_ftype``: the token embedding's (also the output layer's when tied); default ``"q8_0"`` for the
    4/5-bit types (as the shipped Q4_1 file does), else ``ftype``.
    """
    import gguf
    import torch

    cfg = model.config
    if getattr(cfg, "model_type", None) not in LLAMA_LAYOUT:
        raise ModelLoadError(f"GGUF export supports the Llama layout ({', '.join(LLAMA_LAYOUT)}), "
                             f"not model_type {getattr(cfg, 'model_type', None)!r}")
    if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False) or getattr(cfg, "qkv_bias", False):
        raise ModelLoadError("GGUF export of models with attention/MLP biases is not supported")
    if ftype not in _FTYPES:
        raise ValueError(f"ftype must be one of {sorted(_FTYPES)}, got {ftype!r}")
    n_head = cfg.num_attention_heads
    n_kv = getattr(cfg, "num_key_value_heads", None) or n_head
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_head
    n_layer = cfg.num_hidden_layers
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    w = gguf.GGUFWriter(tmp, "llama")
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(name or getattr(cfg, "_name_or_path", "") or "exported")
    w.add_context_length(int(cfg.max_position_embeddings))
    w.add_embedding_length(int(cfg.hidden_size))
    w.add_block_count(int(n_layer))
    w.add_feed_forward_length(int(cfg.intermediate_size))
    w.add_head_count(int(n_head))
    w.add_head_count_kv(int(n_kv))
    w.add_key_length(int(head_dim))
    w.add_value_length(int(head_dim))
    w.add_rope_dimension_count(int(head_dim))
    w.add_rope_freq_base(_rope_theta(cfg))
    w.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    w.add_vocab_size(int(cfg.vocab_size))
    w.add_file_type(_FTYPES[ftype])
    w.add_tokenizer_model("none")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layer)
    qtypes = {"f32": None, "f16": None, "q8_0": gguf.GGMLQuantizationType.Q8_0,
              "q4_0": gguf.GGMLQuantizationType.Q4_0, "q4_1": gguf.GGMLQuantizationType.Q4_1,
              "q5_0": gguf.GGMLQuantizationType.Q5_0}
    emb_ftype = embedding_ftype or ("q8_0" if ftype in ("q4_0", "q4_1", "q5_0") else ftype)
    if emb_ftype not in _FTYPES:
        raise ValueError(f"embedding_ftype must be one of {sorted(_FTYPES)}, got {emb_ftype!r}")
    state = model.state_dict()
    tied = getattr(cfg, "tie_word_embeddings", False)
    for key, tensor in state.items():
        if tied and key == "lm_head.weight":
            continue
        if key.endswith("rotary_emb.inv_freq"):
            continue
        gname = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if gname is None:
            raise ModelLoadError(f"GGUF export: no llama.cpp tensor for {key!r}")
        data = tensor.detach().to(torch.float32).cpu().numpy()
        if key.endswith("q_proj.weight"):
            data = permute_rows(data, n_head)
        elif key.endswith("k_proj.weight"):
            data = permute_rows(data, n_kv)
        ft = emb_ftype if gname == "token_embd.weight" else ftype
        qtype = qtypes[ft]
        if data.ndim == 1 or ft == "f32":
            w.add_tensor(gname, np.ascontiguousarray(data, dtype=np.float32))
        elif ft == "f16":
            w.add_tensor(gname, np.ascontiguousarray(data, dtype=np.float16))
        else:
            assert qtype is not None
            q = gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32), qtype)
            w.add_tensor(gname, q, raw_shape=q.shape, raw_dtype=qtype)
    return finish_writing(w, tmp, out)


def finish_writing(w: Any, tmp: Path, out: Path) -> Path:
    """Write a filled ``GGUFWriter`` (opened on ``tmp``) and move the file into place as ``out``."""
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.replace(out)
    return out
