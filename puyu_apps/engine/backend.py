"""Which backend runs a model, and opening a model on llama.cpp.

``backend="auto"`` (the default of :meth:`LanguageModel.load` and of the pipelines) picks llama.cpp when all of
these hold, and transformers otherwise:

- llama-cpp-python is installed (the ``fast`` extra; ``make setup`` builds it);
- the device is the CPU (``"cpu"``, or ``"auto"`` on a machine without CUDA);
- no torch dtype was asked for (``dtype="auto"``): asking for ``"float32"``/``"bfloat16"`` means the transformers
  weights;
- the model is a GGUF file (a registered pack such as the embedded default, a ``.gguf`` path, or a folder holding
  only a ``.gguf``).

Tiny random test models and transformers folders stay on transformers under ``"auto"``; ``backend="llama.cpp"``
exports them to a GGUF file in the cache first (float32, so outputs match).

On a CUDA device (``"cuda"``, ``"cuda:N"``, or ``"auto"`` on a machine with CUDA), ``"auto"`` picks the torch
static engine (``"torch-static"``, :mod:`puyu_apps.engine.static`) for Llama-layout models (``model_type`` in
:data:`~puyu_apps.engine.static.SUPPORTED_MODEL_TYPES`) and transformers for the others. ``backend="torch-static"``
runs it on any device (on the CPU for transformers folders, when asked for).

``$PUYU_APPS_BACKEND`` overrides ``"auto"`` for a whole process (``transformers`` / ``llama.cpp`` /
``torch-static``). The choice and its reason are reported in :meth:`LanguageModel.info` (``backend``,
``backend_note``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..core.config import LoadConfig
from ..errors import DeviceUnavailableError, MissingDependencyError, ModelLoadError, UnknownModelError
from ..paths import cache_dir
from .llamacpp import INSTALL_HINT, available

BACKENDS = ("auto", "transformers", "llama.cpp", "torch-static")


def find_gguf(name_or_path: str | Path) -> tuple[Path | None, Any]:
    """The GGUF file behind a model name or path (None for transformers sources), and its registry entry."""
    from ..core.registry import get_entry

    name = str(name_or_path)
    try:
        entry = get_entry(name)
    except UnknownModelError:
        entry = None
    if entry is not None:
        if entry.kind != "gguf-pack" or entry.locate is None:
            return None, entry
        try:
            return entry.locate(), entry
        except ModelLoadError:
            return None, entry
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path, None
    if path.is_dir() and not (path / "config.json").exists():
        ggufs = sorted(path.glob("*.gguf"))
        if ggufs:
            return ggufs[0], None
    return None, None


def model_type_of(name_or_path: str | Path) -> str | None:
    """The transformers ``model_type`` of a model name or path without loading weights (the GGUF architecture for
    GGUF files); None when it cannot be told."""
    from ..core.registry import get_entry

    name = str(name_or_path)
    try:
        entry = get_entry(name)
    except UnknownModelError:
        entry = None
    if entry is not None and entry.kind == "random":
        return str((entry.random_config or {}).get("model_type") or "") or None
    path = Path(name).expanduser()
    if entry is None and path.is_dir() and (path / "config.json").exists():
        try:
            return json.loads((path / "config.json").read_text()).get("model_type")
        except (OSError, ValueError):
            return None
    gguf, _ = find_gguf(name_or_path)
    if gguf is not None and Path(gguf).exists():
        from .gguf_model import read_base

        try:
            return read_base(gguf).arch
        except ModelLoadError:
            return None
    return None


def _cpu(device: str) -> bool:
    if device == "cpu":
        return True
    if device == "auto":
        try:
            import torch

            return not torch.cuda.is_available()
        except ImportError:
            return True
    return False


def choose_backend(name_or_path: str | Path, cfg: LoadConfig) -> tuple[str, str]:
    """``("llama.cpp" | "transformers" | "torch-static", why)``. Raises when ``llama.cpp`` is asked for and cannot
    run."""
    want = cfg.backend
    if want == "auto":
        env = os.environ.get("PUYU_APPS_BACKEND", "").strip() or "auto"
        if env not in BACKENDS:
            raise ValueError(f"$PUYU_APPS_BACKEND must be one of {BACKENDS}, got {env!r}")
        want = env
    if want == "transformers":
        if cfg.gguf_format is not None:
            raise ValueError(f"gguf_format={cfg.gguf_format!r} is a llama.cpp weight type; drop it or use "
                             f"backend='llama.cpp'")
        return "transformers", "asked for"
    if want == "torch-static":
        if cfg.gguf_format is not None:
            raise ValueError(f"gguf_format={cfg.gguf_format!r} is a llama.cpp weight type; drop it or use "
                             f"backend='llama.cpp'")
        return "torch-static", "asked for"
    if want == "auto" and cfg.gguf_format is None and not _cpu(cfg.device):
        from .static import SUPPORTED_MODEL_TYPES

        mt = model_type_of(name_or_path)
        if mt in SUPPORTED_MODEL_TYPES or mt == "internlm2":  # InternLM2 folders load converted to Llama
            return "torch-static", f"auto: CUDA device, Llama-layout model ({mt})"
        return "transformers", f"device {cfg.device!r} is not the CPU and model type {mt!r} is not Llama-layout"
    if want == "auto" and cfg.gguf_format is not None:
        want = "llama.cpp"  # a GGUF weight type was asked for: only llama.cpp runs it
    gguf, entry = find_gguf(name_or_path)
    if want == "llama.cpp":
        if not available():
            raise MissingDependencyError(f"backend='llama.cpp' was asked for but llama-cpp-python is not installed; "
                                         f"{INSTALL_HINT}")
        if not _cpu(cfg.device):
            raise DeviceUnavailableError(f"the llama.cpp backend is built for the CPU here; device {cfg.device!r} "
                                         f"needs backend='transformers'")
        if cfg.dtype != "auto":
            raise ValueError(f"dtype={cfg.dtype!r} selects transformers weights; the llama.cpp backend runs the GGUF "
                             f"file's own format: pass dtype='auto' or backend='transformers'")
        return "llama.cpp", "asked for"
    # auto
    if not available():
        return "transformers", "llama-cpp-python is not installed (pip install 'puyu_apps[fast]')"
    if not _cpu(cfg.device):
        return "transformers", f"device {cfg.device!r} is not the CPU"
    if cfg.dtype != "auto":
        return "transformers", f"dtype {cfg.dtype!r} was asked for"
    if gguf is None or not Path(gguf).exists():
        return "transformers", "the model is not a GGUF file"
    return "llama.cpp", "auto: CPU, GGUF model, llama-cpp-python installed"


def _eos_ids(folder: Path | None, tokenizer: Any, config: Any) -> set[int]:
    ids: set[int] = set()
    values: list[Any] = [getattr(config, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)]
    if folder is not None and (folder / "generation_config.json").exists():
        try:
            values.append(json.loads((folder / "generation_config.json").read_text()).get("eos_token_id"))
        except (OSError, ValueError):
            pass
    for v in values:
        if isinstance(v, int):
            ids.add(v)
        elif isinstance(v, (list, tuple)):
            ids.update(int(x) for x in v)
    return ids


def open_llamacpp(name_or_path: str | Path, cfg: LoadConfig, note: str = "") -> Any:
    """Open ``name_or_path`` on the llama.cpp backend (see the module docstring for the sources accepted)."""
    from transformers import AutoConfig, AutoTokenizer

    from ..core.loading import convert_gguf, load
    from .model import LlamaCppLanguageModel

    gguf, entry = find_gguf(name_or_path)
    name = str(name_or_path)
    twin_cfg = LoadConfig(device="cpu", dtype="float32", trust_remote_code=cfg.trust_remote_code,
                          max_context=cfg.max_context, threads=cfg.threads, backend="transformers")
    if gguf is not None and cfg.gguf_format is None:
        gguf = Path(gguf)
        if entry is not None:
            folder = convert_gguf(gguf, cache_dir() / "models" / entry.name)
            source = f"GGUF file {gguf} (package {entry.package})"
        else:
            folder = convert_gguf(gguf, cache_dir() / "models" / f"{gguf.stem}-{gguf.stat().st_size}")
            source = f"GGUF file {gguf}"
        tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=cfg.trust_remote_code)
        config = AutoConfig.from_pretrained(folder, trust_remote_code=cfg.trust_remote_code)
        eos = _eos_ids(folder, tok, config)

        def twin_loader() -> Any:
            return load(name_or_path, twin_cfg)
    else:
        # a transformers source (random test model, local folder), or another weight type asked for: export the
        # float32 weights to GGUF once (a GGUF source is dequantized first, so re-quantizing adds its own error)
        from ..core.adapters import base_fingerprint
        from ..core.generate import eos_token_ids
        from .gguf_model import export_model

        loaded = load(name_or_path, twin_cfg)
        fmt = cfg.gguf_format or "f32"
        fp = base_fingerprint(loaded.model)
        stem = entry.name if entry is not None else (Path(name).name or "model")
        out = cache_dir() / "gguf_export" / f"{stem}-{fp}-{fmt}.gguf"
        if not out.exists():
            export_model(loaded.model, out, ftype=fmt, name=name)
        tok, config = loaded.tokenizer, loaded.model.config
        eos = eos_token_ids(loaded.model, tok)
        source = f"{loaded.source}, exported to {out}"
        gguf = out

        def twin_loader() -> Any:
            return loaded
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    lm = LlamaCppLanguageModel(name=name, gguf=gguf, tokenizer=tok, config=config, source=source, load_config=cfg,
                               eos=eos, twin_loader=twin_loader)
    lm._backend_note = note
    return lm
