"""CT preprocessing as one MONAI ``Compose`` of dict transforms: channel first, orientation to RAS, resampling
to the segmenter's working spacing, HU window to [0, 1]. The same Compose inverts model outputs back onto the
original DICOM grid, so coordinates stay right whatever the scanner's orientation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._optional import require
from .dicom_io import CTVolume


@dataclass(frozen=True)
class PreprocessConfig:
    pixdim: tuple[float, float, float] = (1.5, 1.5, 1.5)  # working spacing (mm), RAS axes
    axcodes: str = "RAS"
    hu_min: float = -1000.0
    hu_max: float = 400.0

    def __post_init__(self) -> None:
        if len(self.pixdim) != 3 or min(self.pixdim) <= 0:
            raise ValueError(f"pixdim must be three positive spacings in mm, got {self.pixdim}")
        if self.hu_max <= self.hu_min:
            raise ValueError(f"hu_max ({self.hu_max}) must be greater than hu_min ({self.hu_min})")
        if sorted(self.axcodes.upper()) != sorted("RAS") and len(self.axcodes) == 3 and not all(
                c in "LRAPSI" for c in self.axcodes.upper()):
            raise ValueError(f"axcodes must be 3 letters of L/R A/P S/I, got {self.axcodes!r}")


def ct_transforms(cfg: PreprocessConfig = PreprocessConfig(), keys: tuple[str, ...] = ("image",),
                  label_keys: tuple[str, ...] = ()) -> Any:
    """The Compose. ``label_keys`` are resampled with nearest neighbour and not rescaled."""
    require("monai", "medical")
    from monai.transforms import Compose, EnsureChannelFirstd, Orientationd, ScaleIntensityRanged, Spacingd

    all_keys = tuple(keys) + tuple(label_keys)
    modes = ["bilinear"] * len(keys) + ["nearest"] * len(label_keys)
    return Compose([
        EnsureChannelFirstd(keys=all_keys, channel_dim="no_channel"),
        Orientationd(keys=all_keys, axcodes=cfg.axcodes, labels=(("L", "R"), ("P", "A"), ("I", "S"))),
        Spacingd(keys=all_keys, pixdim=cfg.pixdim, mode=modes, padding_mode="border"),
        ScaleIntensityRanged(keys=keys, a_min=cfg.hu_min, a_max=cfg.hu_max, b_min=0.0, b_max=1.0, clip=True),
    ])


def to_monai(vol: CTVolume, extra: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """The volume as a MONAI dict: ``image`` is a MetaTensor [X, Y, Z] with its RAS affine (MONAI's space).

    ``extra`` arrays in DICOM order [Z, Y, X] (e.g. a label) are added on the same grid.
    """
    require("monai", "medical")
    import torch
    from monai.data import MetaTensor

    affine = torch.as_tensor(vol.affine_ras(), dtype=torch.float64)
    out = {"image": MetaTensor(torch.from_numpy(vol.xyz_array()), affine=affine.clone())}
    for k, arr in (extra or {}).items():
        out[k] = MetaTensor(torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 1, 0))), affine=affine.clone())
    return out


def invert_to_native(transform: Any, data: dict[str, Any], pred: Any, key: str = "image") -> np.ndarray:
    """Map a model output on the working grid (tensor [C, X', Y', Z']) back onto the DICOM grid [C, Z, Y, X]."""
    from monai.data import MetaTensor
    from monai.transforms import Invertd

    img = data[key]
    mt = MetaTensor(pred, meta=dict(img.meta))
    mt.applied_operations = list(img.applied_operations)
    inv = Invertd(keys="pred", transform=transform, orig_keys=key, nearest_interp=False)
    out = inv({"pred": mt, key: img})["pred"]
    arr = out.detach().cpu().numpy() if hasattr(out, "detach") else np.asarray(out)
    return np.ascontiguousarray(arr.transpose(0, 3, 2, 1))
