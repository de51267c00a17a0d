"""Nodule segmentation: a small MONAI 3D UNet, sliding-window inference, and the reproducible training recipe
on synthetic phantoms (``puyu medical train-segmenter`` / ``scripts/train_segmenter.py``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .._optional import require
from .._threads import set_torch_threads
from ..paths import vertical_dir
from .dicom_io import CTVolume
from .transforms import PreprocessConfig, ct_transforms, invert_to_native, to_monai

WEIGHTS_NAME = "segmenter.pt"


@dataclass
class SegmenterConfig:
    channels: tuple[int, ...] = (8, 16, 32, 64)
    strides: tuple[int, ...] = (2, 2, 2)
    num_res_units: int = 1
    roi: tuple[int, int, int] = (64, 64, 64)
    overlap: float = 0.25
    threshold: float = 0.5
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)

    def __post_init__(self) -> None:
        if len(self.strides) != len(self.channels) - 1:
            raise ValueError(f"strides must have len(channels) - 1 = {len(self.channels) - 1} items, "
                             f"got {len(self.strides)}")
        if not 0 <= self.overlap < 1:
            raise ValueError(f"overlap must be within [0, 1), got {self.overlap}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be within (0, 1), got {self.threshold}")
        if isinstance(self.preprocess, dict):
            self.preprocess = PreprocessConfig(**{k: tuple(v) if isinstance(v, list) else v
                                                  for k, v in self.preprocess.items()})
        self.channels, self.strides, self.roi = tuple(self.channels), tuple(self.strides), tuple(self.roi)


def build_unet(cfg: SegmenterConfig) -> Any:
    require("monai", "medical")
    from monai.networks.nets import UNet

    return UNet(spatial_dims=3, in_channels=1, out_channels=1, channels=cfg.channels, strides=cfg.strides,
                num_res_units=cfg.num_res_units)


class NoduleSegmenter:
    """Loads weights (``verticals/medical/segmenter.pt``, a user's ``.pt`` state dict, or a MONAI bundle folder
    whose ``models/model.pt`` fits the same UNet) and maps a :class:`CTVolume` to a nodule probability map on the
    DICOM grid."""

    def __init__(self, weights: str | Path | None = None, device: str = "cpu", cfg: SegmenterConfig | None = None):
        import torch

        path = Path(weights) if weights else vertical_dir("medical") / WEIGHTS_NAME
        if path.is_dir():  # MONAI bundle layout
            cand = path / "models" / "model.pt"
            if not cand.exists():
                from ..errors import ModelLoadError
                raise ModelLoadError(f"{path}: no models/model.pt in this MONAI bundle folder; pass a bundle with "
                                     f"trained weights or a .pt state dict")
            path = cand
        if not path.exists():
            from ..errors import ModelLoadError
            raise ModelLoadError(f"{path}: segmenter weights not found; train them with `puyu medical "
                                 f"train-segmenter` or pass segmenter_weights=PATH")
        blob = torch.load(path, map_location=device, weights_only=True)
        state = blob.get("state_dict", blob) if isinstance(blob, dict) else blob
        cfg_dict = blob.get("config") if isinstance(blob, dict) else None
        self.cfg = cfg or (SegmenterConfig(**json.loads(cfg_dict)) if isinstance(cfg_dict, str) else SegmenterConfig())
        self.net = build_unet(self.cfg)
        self.net.load_state_dict(state)
        self.net.eval().to(device)
        self.device, self.path = device, path
        self.transform = ct_transforms(self.cfg.preprocess)

    def predict(self, vol: CTVolume, progress: Callable[[float], None] | None = None) -> np.ndarray:
        """Nodule probability [Z, Y, X] on the DICOM grid."""
        import torch
        from monai.inferers import sliding_window_inference

        data = self.transform(to_monai(vol))
        x = data["image"].as_tensor()[None].float().to(self.device)  # [1, 1, X', Y', Z']
        with torch.inference_mode():
            logits = sliding_window_inference(x, self.cfg.roi, sw_batch_size=2, predictor=self.net,
                                              overlap=self.cfg.overlap, mode="gaussian", padding_mode="replicate")
            prob = torch.sigmoid(logits)[0].cpu()
        if progress:
            progress(0.8)
        return invert_to_native(self.transform, data, prob)[0].clip(0, 1)


# -- training recipe ---------------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    seed: int = 0
    n_volumes: int = 20
    steps: int = 2000
    batch: int = 4
    patch: int = 48
    lr: float = 3e-3
    threads: int = 2
    size: int = 128  # rows and columns of each training phantom
    z_mm: float = 110.0  # its length along z

    def __post_init__(self) -> None:
        for name in ("n_volumes", "steps", "batch", "patch", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def _training_volume(rng: np.random.Generator, size: int, z_mm: float, pre: PreprocessConfig) -> tuple[Any, Any]:
    from .phantom import make_phantom, random_nodules

    dxy = float(rng.uniform(0.9, 2.3))
    dz = float(rng.choice([1.25, 2.0, 2.5, 3.0]))
    shape = (int(np.ceil(z_mm / dz)), size, size)
    zlen = shape[0] * dz
    nods = random_nodules(rng, int(rng.integers(2, 5)), zlen=zlen)
    ph = make_phantom(shape, (dxy, dxy, dz), nods, seed=int(rng.integers(1 << 30)),
                      noise_hu=float(rng.uniform(10, 30)), n_vessels=int(rng.integers(8, 20)))
    vol = CTVolume(hu=ph.hu, spacing=ph.spacing, origin=np.array(ph.origin), row_dir=np.array([1.0, 0, 0]),
                   col_dir=np.array([0, 1.0, 0]), slice_dir=np.array([0, 0, 1.0]))
    data = ct_transforms(pre, label_keys=("label",))(to_monai(vol, {"label": ph.label.astype(np.float32)}))
    return data["image"].as_tensor().float(), data["label"].as_tensor().float()


def _plain(t: Any) -> Any:
    """A MetaTensor as a plain tensor: MetaTensor dispatch makes every op of the UNet ~100x slower on CPU."""
    return t.as_tensor() if hasattr(t, "as_tensor") else t


def train(out: str | Path, tcfg: TrainConfig = TrainConfig(), scfg: SegmenterConfig = SegmenterConfig(),
          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the UNet from scratch on freshly generated phantoms and save ``{state_dict, config, recipe}``."""
    import torch
    from monai.losses import DiceCELoss
    from monai.transforms import RandCropByPosNegLabeld, RandFlipd

    torch.manual_seed(tcfg.seed)
    set_torch_threads(tcfg.threads)
    rng = np.random.default_rng(tcfg.seed)
    t0 = time.perf_counter()
    vols = [_training_volume(rng, tcfg.size, tcfg.z_mm, scfg.preprocess) for _ in range(tcfg.n_volumes)]
    log(f"generated {len(vols)} phantoms in {time.perf_counter() - t0:.1f}s")
    crop = RandCropByPosNegLabeld(keys=("image", "label"), label_key="label", spatial_size=(tcfg.patch,) * 3,
                                  pos=2, neg=1, num_samples=tcfg.batch)
    flip = RandFlipd(keys=("image", "label"), prob=0.5, spatial_axis=2)
    crop.set_random_state(tcfg.seed)
    flip.set_random_state(tcfg.seed + 1)
    net = build_unet(scfg)
    opt = torch.optim.AdamW(net.parameters(), lr=tcfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=tcfg.steps, eta_min=tcfg.lr * 0.05)
    loss_fn = DiceCELoss(sigmoid=True, smooth_nr=1e-4, smooth_dr=1e-4)
    net.train()
    for step in range(tcfg.steps):
        img, lab = vols[step % len(vols)]
        samples = [flip(s) for s in crop({"image": img, "label": lab})]
        x = torch.stack([_plain(s["image"]) for s in samples])  # [B, 1, P, P, P]
        y = torch.stack([_plain(s["label"]) for s in samples])
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == tcfg.steps - 1:
            log(f"step {step:4d} loss {loss.item():.4f} ({time.perf_counter() - t0:.0f}s)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg_json = json.dumps(asdict(scfg))
    recipe = {**asdict(tcfg), "train_seconds": round(time.perf_counter() - t0, 1),
              "params": sum(p.numel() for p in net.parameters())}
    tmp = out.with_suffix(".tmp")
    torch.save({"state_dict": net.state_dict(), "config": cfg_json, "recipe": json.dumps(recipe)}, tmp)
    tmp.replace(out)
    log(f"saved {out} ({out.stat().st_size / 1e6:.2f} MB) after {recipe['train_seconds']}s")
    return recipe
