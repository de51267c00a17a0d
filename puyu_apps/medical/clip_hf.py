"""Real CLIP-style checkpoints from a local folder: HF ``CLIPModel`` or ``ChineseCLIPModel`` (with their
tokenizer and image processor). Nothing is downloaded: the folder must hold the weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ModelLoadError


class HFClipEncoder:
    """``encode_image`` (crops in [0, 1], [B, H, W]) and ``encode_text`` (phrases) -> L2-normalised features."""

    def __init__(self, model: Any, tokenizer: Any, processor: Any):
        self.model, self.tokenizer, self.processor = model.eval(), tokenizer, processor

    def encode_image(self, crops: Any) -> Any:
        import torch

        imgs = [np.repeat((np.asarray(c) * 255).astype(np.uint8)[..., None], 3, -1) for c in crops]
        px = self.processor(images=imgs, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            out = self.model.get_image_features(pixel_values=px)
        out = getattr(out, "pooler_output", out)
        return torch.nn.functional.normalize(out, dim=-1)

    def encode_text(self, phrases: Sequence[str]) -> Any:
        import torch

        tok = self.tokenizer(list(phrases), padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():
            out = self.model.get_text_features(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        out = getattr(out, "pooler_output", out)
        return torch.nn.functional.normalize(out, dim=-1)


def load_hf_clip(path: str | Path) -> HFClipEncoder:
    """Load a CLIP or Chinese-CLIP checkpoint folder (``config.json`` + weights + tokenizer files)."""
    import json

    from transformers import AutoTokenizer, ChineseCLIPModel, CLIPImageProcessor, CLIPModel

    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.exists():
        raise ModelLoadError(f"{path}: no config.json; pass a local CLIP / Chinese-CLIP checkpoint folder")
    model_type = json.loads(cfg_file.read_text())["model_type"]
    if model_type == "clip":
        model = CLIPModel.from_pretrained(path, local_files_only=True)
    elif model_type == "chinese_clip":
        model = ChineseCLIPModel.from_pretrained(path, local_files_only=True)
    else:
        raise ModelLoadError(f"{path}: model_type {model_type!r} is not clip or chinese_clip")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    try:
        processor = CLIPImageProcessor.from_pretrained(path, local_files_only=True)
    except OSError:
        size = model.config.vision_config.image_size
        processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    return HFClipEncoder(model, tokenizer, processor)
