"""The shipped UNet weights, sliding-window inference, and the training recipe (a few steps)."""

from __future__ import annotations

import numpy as np
import pytest

from puyu_apps.errors import ModelLoadError


def test_shipped_weights_are_small_and_load():
    from puyu_apps.medical.segment import WEIGHTS_NAME, NoduleSegmenter
    from puyu_apps.paths import vertical_dir

    path = vertical_dir("medical") / WEIGHTS_NAME
    assert path.stat().st_size < 2_000_000
    seg = NoduleSegmenter()
    assert sum(p.numel() for p in seg.net.parameters()) < 300_000


def test_missing_weights_and_bundle_layout(tmp_path):
    import shutil

    from puyu_apps.medical.segment import WEIGHTS_NAME, NoduleSegmenter
    from puyu_apps.paths import vertical_dir

    with pytest.raises(ModelLoadError, match="train-segmenter"):
        NoduleSegmenter(tmp_path / "none.pt")
    (tmp_path / "bundle" / "models").mkdir(parents=True)
    shutil.copy(vertical_dir("medical") / WEIGHTS_NAME, tmp_path / "bundle" / "models" / "model.pt")
    assert NoduleSegmenter(tmp_path / "bundle").path.name == "model.pt"


def test_sliding_window_finds_the_phantom_nodules(small_series):
    from puyu_apps.medical.dicom_io import load_ct
    from puyu_apps.medical.segment import NoduleSegmenter

    folder, _, ph = small_series
    prob = NoduleSegmenter().predict(load_ct(folder))
    assert prob.shape == ph.label.shape and 0 <= prob.min() and prob.max() <= 1
    gt, pr = ph.label > 0, prob >= 0.5
    dice = 2 * (gt & pr).sum() / (gt.sum() + pr.sum())
    assert dice > 0.6
    for n in ph.nodules:  # every nodule centre is covered
        c = np.array(n["centre_lps"])
        k = np.round((c - np.array(ph.origin)) / np.array(ph.spacing)).astype(int)
        assert prob[k[2], k[1], k[0]] > 0.5, n


def test_training_recipe_is_reproducible(tmp_path):
    import torch

    from puyu_apps.medical.segment import NoduleSegmenter, SegmenterConfig, TrainConfig, train

    cfg = TrainConfig(n_volumes=1, steps=3, batch=2, patch=32, size=64, z_mm=60.0)
    small = SegmenterConfig(channels=(4, 8, 16), strides=(2, 2), roi=(32, 32, 32))
    logs: list[str] = []
    r1 = train(tmp_path / "a.pt", cfg, small, log=logs.append)
    train(tmp_path / "b.pt", cfg, small, log=lambda s: None)
    a = torch.load(tmp_path / "a.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert r1["steps"] == 3 and any("saved" in x for x in logs)
    seg = NoduleSegmenter(tmp_path / "a.pt")
    assert seg.cfg.channels == (4, 8, 16)
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)
