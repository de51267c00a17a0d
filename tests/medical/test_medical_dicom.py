"""DICOM input: series / multi-frame / list, sorting, HU, typed errors naming the file, LPS/RAS coordinates."""

from __future__ import annotations

import random
import shutil

import numpy as np
import pytest

from puyu_apps.errors import InvalidInputError
from puyu_apps.medical import (EmptySeriesError, MixedSeriesError, NotDicomError, SliceGeometryError,
                               TruncatedDicomError, UnsupportedModalityError)
from puyu_apps.medical.dicom_io import lps_to_ras, load_ct, ras_to_lps
from puyu_apps.medical.phantom import make_phantom, write_series


@pytest.fixture(scope="module")
def tiny_phantom():
    return make_phantom((12, 48, 48), (4.0, 4.0, 5.0), nodules=(), seed=3, n_vessels=2)


def test_series_reads_back_hu_and_geometry(small_series):
    folder, paths, ph = small_series
    vol = load_ct(folder)
    assert vol.shape == ph.hu.shape and vol.modality == "CT"
    assert vol.spacing == pytest.approx((1.6, 1.6, 2.5))
    inside = ph.hu > -1000  # voxels not clipped by the 12-bit store
    assert np.abs(vol.hu[inside] - ph.hu[inside]).max() <= 0.51
    assert np.allclose(vol.origin, ph.origin, atol=1e-3)
    assert vol.identifiers["PatientID"] == "PID-77123"


def test_sorting_ignores_file_order(small_series):
    folder, paths, ph = small_series
    shuffled = list(paths)
    random.Random(0).shuffle(shuffled)
    vol = load_ct(shuffled)
    assert np.array_equal(vol.hu, load_ct(folder).hu)
    assert vol.files == [str(p) for p in paths]


def test_multiframe_equals_series(tmp_path, tiny_phantom):
    write_series(tiny_phantom, tmp_path / "mf", multi_frame=True)
    write_series(tiny_phantom, tmp_path / "sf")
    a, b = load_ct(tmp_path / "mf" / "multiframe.dcm"), load_ct(tmp_path / "sf")
    assert a.shape == b.shape == tiny_phantom.hu.shape
    assert np.array_equal(a.hu, b.hu) and a.spacing == pytest.approx(b.spacing)
    assert np.allclose(a.affine_lps(), b.affine_lps())


def test_pydicom_real_slices_load():
    from pydicom.data import get_testdata_file

    small = load_ct(get_testdata_file("CT_small.dcm"))
    assert small.shape == (1, 128, 128) and small.hu.min() < -500  # intercept -1024 applied
    j2k = load_ct(get_testdata_file("693_J2KI.dcm"))  # JPEG 2000 through pylibjpeg-openjpeg
    assert j2k.shape == (1, 512, 512) and np.ptp(j2k.hu) > 500


def test_not_dicom_names_file(tmp_path, tiny_phantom):
    write_series(tiny_phantom, tmp_path / "s")
    bad = tmp_path / "s" / "notes.txt"
    bad.write_text("not an image")
    with pytest.raises(NotDicomError) as e:
        load_ct(tmp_path / "s")
    assert "notes.txt" in str(e.value) and e.value.path == str(bad)
    assert isinstance(e.value, InvalidInputError)


def test_truncated_names_file(tmp_path, tiny_phantom):
    paths = write_series(tiny_phantom, tmp_path / "s")
    data = paths[3].read_bytes()
    paths[3].write_bytes(data[: len(data) - 1000])
    with pytest.raises(TruncatedDicomError, match=paths[3].name):
        load_ct(tmp_path / "s")


def test_mr_series_rejected(tmp_path, tiny_phantom):
    write_series(tiny_phantom, tmp_path / "mr", modality="MR")
    with pytest.raises(UnsupportedModalityError, match="modality is MR"):
        load_ct(tmp_path / "mr")


def test_empty_folder_and_missing_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptySeriesError, match="empty"):
        load_ct(tmp_path / "empty")
    with pytest.raises(EmptySeriesError, match="no such"):
        load_ct(tmp_path / "nope")
    with pytest.raises(EmptySeriesError):
        load_ct([])


def test_mixed_series(tmp_path, tiny_phantom):
    a = write_series(tiny_phantom, tmp_path / "a")
    b = write_series(tiny_phantom, tmp_path / "b")
    shutil.copy(b[0], tmp_path / "a" / "other.dcm")
    with pytest.raises(MixedSeriesError, match="2 series"):
        load_ct(tmp_path / "a")
    import pydicom

    uid = str(pydicom.dcmread(a[0]).SeriesInstanceUID)
    assert load_ct(tmp_path / "a", series_uid=uid).shape == tiny_phantom.hu.shape


def test_duplicate_and_missing_positions(tmp_path, tiny_phantom):
    import pydicom

    paths = write_series(tiny_phantom, tmp_path / "s")
    shutil.copy(paths[4], tmp_path / "s" / "dup.dcm")
    ds = pydicom.dcmread(tmp_path / "s" / "dup.dcm")
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(tmp_path / "s" / "dup.dcm")
    with pytest.raises(SliceGeometryError, match="duplicate"):
        load_ct(tmp_path / "s")
    (tmp_path / "s" / "dup.dcm").unlink()
    paths[6].unlink()
    with pytest.raises(SliceGeometryError, match="missing slice") as e:
        load_ct(tmp_path / "s")
    assert paths[7].name in str(e.value)


def test_lps_ras_round_trip_through_monai(small_series):
    """A point given in LPS by the phantom is found at the same voxel after the MONAI Compose (RAS, 1.5 mm),
    and the inverse brings an array back onto the DICOM grid."""
    from puyu_apps.medical.transforms import ct_transforms, invert_to_native, to_monai

    folder, _, ph = small_series
    vol = load_ct(folder)
    a = np.random.default_rng(0).normal(size=(4, 4))
    assert np.allclose(ras_to_lps(lps_to_ras(a)), a)
    tr = ct_transforms(label_keys=("label",))
    data = tr(to_monai(vol, {"label": ph.label.astype(np.float32)}))
    img = data["image"]
    aff = img.affine.numpy()
    assert np.linalg.norm(aff[:3, :3], axis=0) == pytest.approx([1.5, 1.5, 1.5])
    assert aff[0, 0] > 0 and aff[1, 1] > 0  # voxel axes now run toward patient Right and Anterior
    for nod in ph.nodules:
        ras = np.r_[lps_to_ras(np.diag([1, 1, 1, 1.0]))[:3, :3] @ np.array(nod["centre_lps"]), 1.0]
        ijk = np.round(np.linalg.inv(aff) @ ras)[:3].astype(int)
        assert data["label"].as_tensor()[0].numpy()[tuple(ijk)] > 0.5, nod
    back = invert_to_native(tr, data, data["label"].as_tensor())
    assert back.shape[1:] == ph.label.shape
    inter = ((back[0] > 0.5) & (ph.label > 0)).sum()
    assert 2 * inter / ((back[0] > 0.5).sum() + (ph.label > 0).sum()) > 0.85
