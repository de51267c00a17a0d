"""LoRA adapters (peft): load several, switch per call, unload, merge; refuse one made for another base model."""

from __future__ import annotations

import hashlib
import json
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from ..errors import AdapterError, AdapterMismatchError

ADAPTER_META = "puyu_adapter.json"


def base_fingerprint(model: Any) -> str:
    """A short hash that identifies a base model's architecture *and* weights, stable across dtypes."""
    cfg = model.config
    arch = {k: getattr(cfg, k, None) for k in (
        "model_type", "hidden_size", "num_hidden_layers", "vocab_size", "intermediate_size", "num_attention_heads",
    )}
    emb = model.get_input_embeddings().weight
    rows = min(32, emb.shape[0])
    signs = (emb[:rows, :32].detach().float().cpu() > 0).flatten().to(torch.uint8).numpy().tobytes()
    h = hashlib.sha256(json.dumps(arch, sort_keys=True).encode() + signs)
    return h.hexdigest()[:16]


def read_adapter_meta(path: Path) -> dict:
    """Validate an adapter folder and return its metadata (peft config + puyu metadata when present)."""
    if not path.is_dir():
        raise AdapterError(f"adapter path {path} is not a folder; an adapter is a peft folder with "
                           f"adapter_config.json and adapter_model.safetensors")
    cfg_file = path / "adapter_config.json"
    if not cfg_file.exists():
        raise AdapterError(f"{path} has no adapter_config.json: not a peft LoRA adapter folder")
    try:
        peft_cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise AdapterError(f"{cfg_file} is not valid JSON ({exc}); re-save the adapter") from exc
    if not isinstance(peft_cfg, dict) or peft_cfg.get("peft_type", "LORA") != "LORA":
        raise AdapterError(f"{cfg_file}: only LoRA adapters are supported (peft_type={peft_cfg.get('peft_type')!r})")
    if not any((path / f).exists() for f in ("adapter_model.safetensors", "adapter_model.bin")):
        raise AdapterError(f"{path} has no adapter_model.safetensors: the adapter weights are missing")
    meta: dict = {"peft": peft_cfg}
    meta_file = path / ADAPTER_META
    if meta_file.exists():
        try:
            meta.update(json.loads(meta_file.read_text(encoding="utf-8")))
        except ValueError as exc:
            raise AdapterError(f"{meta_file} is not valid JSON ({exc})") from exc
    return meta


def write_adapter_meta(path: Path, model: Any, base_name: str, **extra: Any) -> None:
    meta = {"base_model": base_name, "base_fingerprint": base_fingerprint(model), **extra}
    (Path(path) / ADAPTER_META).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")


def check_new_adapter(name: str, path: Path, loaded: dict[str, Path], base_name: str,
                      fingerprint: str) -> dict[str, Any]:
    """Validate a name and an adapter folder before loading (any backend); returns its metadata."""
    if not isinstance(name, str) or not name.strip():
        raise AdapterError(f"adapter name must be a non-empty string, got {name!r}")
    if name in loaded:
        raise AdapterError(f"an adapter named {name!r} is already loaded; unload it first")
    meta = read_adapter_meta(path)
    want = meta.get("base_fingerprint")
    if want and want != fingerprint:
        raise AdapterMismatchError(
            f"adapter {name!r} at {path} was trained for base model {meta.get('base_model')!r} "
            f"(fingerprint {want}), not for the loaded {base_name!r} (fingerprint {fingerprint}); "
            f"load the base model it was made for, or retrain it with `puyu finetune`"
        )
    return meta


class AdapterSet:
    """The LoRA adapters attached to one base model.

    The base model is wrapped into a ``peft.PeftModel`` on the first load; :meth:`use` activates one adapter
    (or none, for the base model) for the duration of a call. Any non-empty name works: peft keys adapters by
    module attribute, so names like ``"eval"`` or ``"my.adapter"`` are mapped to safe internal keys.
    """

    def __init__(self, model: Any, base_name: str):
        self.model = model
        self.base_name = base_name
        self.fingerprint = base_fingerprint(model)
        self.paths: dict[str, Path] = {}
        self.keys: dict[str, str] = {}  # user name -> peft adapter key
        self.merged: list[str] = []

    @property
    def names(self) -> list[str]:
        return list(self.paths)

    def load(self, name: str, path: str | Path) -> None:
        from peft import PeftModel

        path = Path(path)
        meta = check_new_adapter(name, path, self.paths, self.base_name, self.fingerprint)
        key = self._new_key(name)
        try:
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(path), adapter_name=key)
            else:
                self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=key)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise AdapterMismatchError(
                f"adapter {name!r} at {path} does not fit the base model {self.base_name!r}: "
                f"{type(exc).__name__}: {str(exc)[:300]}"
            ) from exc
        self.model.eval()
        self.paths[name] = path
        self.keys[name] = key

    def _new_key(self, name: str) -> str:
        base = "puyu_" + re.sub(r"[^0-9A-Za-z_]", "_", name)
        key, i = base, 1
        while key in self.keys.values():
            i += 1
            key = f"{base}_{i}"
        return key

    def key(self, name: str) -> str:
        """The peft adapter key of a loaded adapter (for code that talks to the peft model directly)."""
        self._check(name)
        return self.keys[name]

    def unload(self, name: str) -> None:
        self._check(name)
        self.model.delete_adapter(self.keys.pop(name))
        del self.paths[name]
        if not self.paths:
            self.model = self.model.unload()

    def merge(self, name: str) -> Any:
        """Fold ``name`` into the base weights; every other adapter is unloaded. Returns the merged model."""
        self._check(name)
        self.model = self.model.merge_and_unload(adapter_names=[self.keys[name]])
        self.merged.append(name)
        self.paths.clear()
        self.keys.clear()
        self.fingerprint = base_fingerprint(self.model)
        return self.model

    def _check(self, name: str) -> None:
        if name not in self.paths:
            raise AdapterError(f"no adapter named {name!r} is loaded; loaded: {self.names or 'none'}")

    @contextmanager
    def use(self, name: str | None) -> Iterator[Any]:
        """Run with adapter ``name`` active (``None``: the base model alone)."""
        if name is None:
            if self.paths:
                with self.model.disable_adapter():
                    yield self.model
            else:
                yield self.model
            return
        self._check(name)
        self.model.set_adapter(self.keys[name])
        yield self.model
