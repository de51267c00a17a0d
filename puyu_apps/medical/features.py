"""CLIP-style image features of the key slices, entering the LLM as retrieved finding phrases.

Choice (documented in docs/medical.md): the image embedding of each nodule's key-slice crop is compared with the
text embeddings of a fixed bank of finding phrases; the best phrase per nodule goes into the prompt as text. This
works with any LLM (no prefix-embedding projector to train per base model) and keeps the prompt inspectable.

Two encoders: the embedded default (:class:`SliceTextEncoder`, a small CNN + bag-of-words text tower trained by
``train_encoder`` with the symmetric contrastive (CLIP / InfoNCE) loss, learnable temperature) and real
checkpoints (HF ``CLIPModel`` / ``ChineseCLIPModel`` folders) through :func:`load_hf_clip`.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .._threads import set_torch_threads
from ..paths import vertical_dir
from .render import window

ENCODER_NAME = "encoder.pt"
CROP_PX, CROP_MM = 32, 48.0
SIZE_BINS = ((0, 6, "under 6 mm", "小于6毫米"), (6, 8, "6 to 8 mm", "6至8毫米"), (8, 15, "8 to 15 mm", "8至15毫米"),
             (15, 99, "15 mm or larger", "15毫米及以上"))
TYPES = {"solid": "实性", "part-solid": "部分实性", "ground-glass": "磨玻璃"}


def phrase_bank() -> list[dict[str, str]]:
    """The finding phrases (English and Chinese) the encoder retrieves from: type x size bin."""
    return [{"kind": k, "bin": en, "en": f"{k} nodule {en}", "zh": f"{zh}{TYPES[k]}结节"}
            for k in TYPES for _, _, en, zh in SIZE_BINS]


def caption_index(kind: str, diameter_mm: float) -> int:
    b = next(i for i, (lo, hi, _, _) in enumerate(SIZE_BINS) if lo <= diameter_mm < hi)
    return list(TYPES).index(kind) * len(SIZE_BINS) + b


def crop(hu: np.ndarray, spacing: Sequence[float], centre_zyx: Sequence[float], shift_mm: Sequence[float] = (0, 0)
         ) -> np.ndarray:
    """A CROP_MM square of the axial slice through ``centre_zyx`` (voxel index), resampled to CROP_PX, [0, 1]."""
    from scipy import ndimage

    k = int(round(centre_zyx[0]))
    step = CROP_MM / CROP_PX
    g = (np.arange(CROP_PX) - CROP_PX / 2 + 0.5) * step
    ys = centre_zyx[1] + (g[:, None] + shift_mm[1]) / spacing[1]
    xs = centre_zyx[2] + (g[None, :] + shift_mm[0]) / spacing[0]
    img = ndimage.map_coordinates(hu[min(max(k, 0), hu.shape[0] - 1)], [ys + 0 * xs, xs + 0 * ys], order=1,
                                  mode="nearest")
    return window(img).astype(np.float32) / 255.0


class SliceTextEncoder:
    """Image tower: 3 conv blocks -> 64-d; text tower: word embedding bag -> 64-d; both L2-normalised."""

    def __init__(self, vocab: list[str], dim: int = 64):
        import torch
        from torch import nn

        self.vocab = {w: i for i, w in enumerate(vocab)}
        self.image = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # [B, 16, 16, 16]
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # [B, 32, 8, 8]
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # [B, 64]
            nn.Linear(64, dim))
        self.text = nn.EmbeddingBag(len(vocab) + 1, dim, mode="mean")
        self.text_proj = nn.Linear(dim, dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))
        self.modules = nn.ModuleDict({"image": self.image, "text": self.text, "text_proj": self.text_proj})

    def parameters(self) -> Any:
        yield from self.modules.parameters()
        yield self.logit_scale

    def tokens(self, phrases: Sequence[str]) -> tuple[Any, Any]:
        import torch

        ids, offsets = [], []
        for p in phrases:
            offsets.append(len(ids))
            ids += [self.vocab.get(w, len(self.vocab)) for w in re.findall(r"[a-z0-9\-]+", p.lower())] or [0]
        return torch.tensor(ids), torch.tensor(offsets)

    def encode_image(self, crops: Any) -> Any:  # crops: [B, 32, 32] -> [B, D]
        import torch

        x = torch.as_tensor(np.asarray(crops, dtype=np.float32))[:, None]
        return torch.nn.functional.normalize(self.image(x), dim=-1)

    def encode_text(self, phrases: Sequence[str]) -> Any:
        import torch

        ids, off = self.tokens(phrases)
        return torch.nn.functional.normalize(self.text_proj(self.text(ids, off)), dim=-1)


def clip_loss(img: Any, txt: Any, logit_scale: Any, targets: Any) -> Any:
    """Symmetric InfoNCE over the batch; ``targets`` [B, B] marks pairs with the same caption as positives."""
    import torch.nn.functional as F

    logits = logit_scale.exp().clamp(max=100) * img @ txt.T  # [B, B]
    t = targets / targets.sum(1, keepdim=True)
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t.T)) / 2


@dataclass
class EncoderTrainConfig:
    seed: int = 0
    n_volumes: int = 24
    steps: int = 1000
    batch: int = 48
    lr: float = 2e-3
    threads: int = 2

    def __post_init__(self) -> None:
        for name in ("n_volumes", "steps", "batch", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def nodule_crops(n_volumes: int, seed: int, per_nodule: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Key-slice crops of phantom nodules (random shifts, flips) and their caption index."""
    from .phantom import make_phantom, random_nodules

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for _ in range(n_volumes):
        dxy, dz = float(rng.uniform(0.9, 2.0)), float(rng.choice([1.25, 2.5]))
        shape = (int(100 / dz), 128, 128)
        nods = random_nodules(rng, 4, zlen=shape[0] * dz)
        ph = make_phantom(shape, (dxy, dxy, dz), nods, seed=int(rng.integers(1 << 30)),
                          noise_hu=float(rng.uniform(10, 30)), n_vessels=8)
        for n in ph.nodules:
            c = np.array(n["centre_lps"])
            zyx = ((c - np.array(ph.origin)) / np.array(ph.spacing))[::-1]
            for _ in range(per_nodule):
                jitter = np.r_[rng.uniform(-0.5, 0.5), 0, 0]
                img = crop(ph.hu, ph.spacing, zyx + jitter, rng.uniform(-3, 3, size=2))
                xs.append(img[:, ::-1] if rng.random() < 0.5 else img)
                ys.append(caption_index(n["kind"], n["diameter_mm"]))
    return np.stack(xs), np.array(ys)


def train_encoder(out: str | Path, cfg: EncoderTrainConfig = EncoderTrainConfig(),
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    import torch

    torch.manual_seed(cfg.seed)
    set_torch_threads(cfg.threads)
    t0 = time.perf_counter()
    crops, labels = nodule_crops(cfg.n_volumes, cfg.seed)
    log(f"{len(crops)} crops from {cfg.n_volumes} phantoms in {time.perf_counter() - t0:.1f}s")
    bank = phrase_bank()
    vocab = sorted({w for p in bank for w in re.findall(r"[a-z0-9\-]+", p["en"].lower())})
    enc = SliceTextEncoder(vocab)
    opt = torch.optim.AdamW(list(enc.parameters()), lr=cfg.lr, weight_decay=1e-4)
    rng = np.random.default_rng(cfg.seed)
    for step in range(cfg.steps):
        idx = rng.choice(len(crops), size=min(cfg.batch, len(crops)), replace=False)
        lab = torch.as_tensor(labels[idx])
        loss = clip_loss(enc.encode_image(crops[idx]), enc.encode_text([bank[i]["en"] for i in labels[idx]]),
                         enc.logit_scale, (lab[:, None] == lab[None, :]).float())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == cfg.steps - 1:
            log(f"step {step:4d} loss {loss.item():.3f}")
    recipe = {**asdict(cfg), "crops": int(len(crops)), "train_seconds": round(time.perf_counter() - t0, 1)}
    out = Path(out)
    tmp = out.with_suffix(".tmp")
    torch.save({"state_dict": enc.modules.state_dict(), "logit_scale": enc.logit_scale.detach(),
                "vocab": json.dumps(vocab), "recipe": json.dumps(recipe)}, tmp)
    tmp.replace(out)
    return recipe


def evaluate_encoder(path: str | Path | None = None, n_volumes: int = 8, seed: int = 999) -> dict[str, Any]:
    """Top-1 phrase retrieval on held-out phantom crops: exact phrase, type and size-bin accuracy."""
    crops, labels = nodule_crops(n_volumes, seed, per_nodule=1)
    r = PhraseRetriever(load_encoder(path))
    pred = r.scores(crops).argmax(1)
    nb = len(SIZE_BINS)
    return {"crops": int(len(labels)), "top1_phrase": round(float((pred == labels).mean()), 3),
            "type_accuracy": round(float((pred // nb == labels // nb).mean()), 3),
            "size_bin_accuracy": round(float((pred % nb == labels % nb).mean()), 3),
            "chance_top1": round(1 / len(phrase_bank()), 3)}


def load_encoder(path: str | Path | None = None) -> SliceTextEncoder:
    import torch

    from ..errors import ModelLoadError

    p = Path(path) if path else vertical_dir("medical") / ENCODER_NAME
    if not p.exists():
        raise ModelLoadError(f"{p}: image-text encoder weights not found; train them with `puyu medical "
                             f"train-encoder` or pass encoder_weights=PATH (or use_features=False)")
    blob = torch.load(p, weights_only=True)
    enc = SliceTextEncoder(json.loads(blob["vocab"]))
    enc.modules.load_state_dict(blob["state_dict"])
    enc.logit_scale.data = blob["logit_scale"]
    enc.modules.eval()
    return enc


class PhraseRetriever:
    """Top finding phrase per nodule from the image-text similarity of its key-slice crop."""

    def __init__(self, encoder: Any):
        import torch

        self.encoder, self.bank = encoder, phrase_bank()
        with torch.inference_mode():
            self.text = encoder.encode_text([b["en"] for b in self.bank])  # [P, D]

    def scores(self, crops: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return (self.encoder.encode_image(crops) @ self.text.T).numpy()  # [N, P]

    def hits(self, vol: Any, found: Sequence[Any]) -> list[dict[str, Any]]:
        """Best phrase per nodule: ``{"nodule": 1-based index, "kind", "bin": SIZE_BINS index, "score"}``."""
        crops = []
        for f in found:
            zyx = np.argwhere(f.mask).mean(0) + np.array([s.start for s in f.box])
            crops.append(crop(vol.hu, vol.spacing, zyx))
        s = self.scores(np.stack(crops))
        nb = len(SIZE_BINS)
        return [{"nodule": i + 1, "kind": list(TYPES)[int(j) // nb], "bin": int(j) % nb,
                 "score": round(float(s[i, j]), 2)} for i, j in enumerate(s.argmax(1))]

    def retrieve(self, vol: Any, found: Sequence[Any], language: str = "en") -> list[str]:
        return [phrase_text(h, language) for h in self.hits(vol, found)]


def phrase_text(hit: dict[str, Any], language: str = "en") -> str:
    """A retrieval hit as the result shows it: ``nodule 1: solid nodule 8 to 15 mm (0.71)``."""
    b = phrase_bank()[list(TYPES).index(hit["kind"]) * len(SIZE_BINS) + hit["bin"]]
    if language == "zh":
        return f"结节{hit['nodule']}：{b['zh']}（{hit['score']:.2f}）"
    return f"nodule {hit['nodule']}: {b['en']} ({hit['score']:.2f})"


def load_retriever(path: str | Path | None = None) -> PhraseRetriever:
    if path and Path(path).is_dir() and (Path(path) / "config.json").exists():
        from .clip_hf import load_hf_clip

        return PhraseRetriever(load_hf_clip(path))
    return PhraseRetriever(load_encoder(path))
