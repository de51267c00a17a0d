"""Shared fixtures: tiny random models and LoRA adapters made on the spot; the embedded model for integration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TINY = "tiny-random-llama"


@pytest.fixture(scope="session")
def tiny_lm():
    from puyu_apps.core import LanguageModel

    return LanguageModel.load(TINY)


def make_adapter(base_name: str, out: Path, seed: int, r: int = 4, write_meta: bool = True) -> Path:
    """A LoRA adapter with random (non-zero) B matrices, so it changes the model's output."""
    import torch
    from peft import LoraConfig, get_peft_model

    from puyu_apps.core.adapters import write_adapter_meta
    from puyu_apps.core.loading import load

    base = load(base_name).model
    torch.manual_seed(seed)
    cfg = LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, cfg)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    peft_model.save_pretrained(out)
    if write_meta:
        write_adapter_meta(out, base, base_name)
    return out


@pytest.fixture(scope="session")
def adapter_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    return {
        "a": make_adapter(TINY, root / "a", seed=1),
        "b": make_adapter(TINY, root / "b", seed=2),
        "qwen": make_adapter("tiny-random-qwen3", root / "qwen", seed=3),
    }


@pytest.fixture(scope="session")
def default_lm():
    """The embedded model on the reference path (transformers); tests/engine covers the llama.cpp default."""
    from puyu_apps.core import LanguageModel

    return LanguageModel.load(backend="transformers")
