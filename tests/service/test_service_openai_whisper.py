"""openai-whisper on the embedded weights: our CTranslate2 -> openai-whisper converter, both engines behind one
interface, offline tokenizer, typed errors for a corrupt model folder."""

from __future__ import annotations

import socket
import struct

import numpy as np
import pytest

from puyu_apps.errors import ModelLoadError
from puyu_apps.service.asr import Transcript, Word, embedded_whisper_dir, make_asr, word_error_rate
from puyu_apps.service.audio import load_audio
from puyu_apps.service.whisper_convert import (WhisperConversionError, convert, read_ctranslate2_model,
                                               sinusoids)

from .conftest import CALL_TEXT

whisper = pytest.importorskip("whisper", reason="openai-whisper is installed by scripts/setup.sh (--no-deps)")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return convert(embedded_whisper_dir(), tmp_path_factory.mktemp("ow") / "tiny.en.pt")


@pytest.fixture(scope="module")
def call_samples(call_wav):
    return load_audio(call_wav).samples


@pytest.fixture(scope="module")
def engines():
    return {name: make_asr(name) for name in ("faster-whisper", "openai-whisper")}


def test_converted_checkpoint_loads_with_whisper_load_model(checkpoint):
    import torch

    model = whisper.load_model(str(checkpoint), device="cpu")  # strict load_state_dict: every key mapped
    d = model.dims
    assert (d.n_mels, d.n_vocab, d.n_audio_layer, d.n_text_layer, d.n_audio_state, d.n_audio_head) == \
        (80, 51864, 4, 4, 384, 6)
    assert not model.is_multilingual  # tiny.en: the GPT-2 tokenizer shipped inside openai-whisper
    ckpt = torch.load(checkpoint, weights_only=True)
    assert ckpt["alignment_heads"][0] == [1, 0]
    assert all(v.dtype == torch.float32 for v in ckpt["model_state_dict"].values())
    np.testing.assert_allclose(ckpt["model_state_dict"]["encoder.positional_embedding"].numpy(),
                               sinusoids(1500, 384), atol=1e-3)


def test_encoder_matches_ctranslate2_numerically(checkpoint, call_samples):
    """The converted encoder gives CTranslate2's float32 encoder output on the same mel features."""
    import ctranslate2
    import torch
    from whisper.audio import log_mel_spectrogram, pad_or_trim

    model = whisper.load_model(str(checkpoint), device="cpu")
    mel = log_mel_spectrogram(pad_or_trim(torch.from_numpy(call_samples.astype(np.float32))), 80)[None]
    with torch.no_grad():
        ours = model.encoder(mel).numpy()
    ct = ctranslate2.models.Whisper(str(embedded_whisper_dir()), device="cpu", compute_type="float32",
                                    intra_threads=2)
    ref = np.array(ct.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.numpy()))))
    assert ours.shape == ref.shape == (1, 1500, 384)
    assert np.abs(ours - ref).max() < 1e-3, np.abs(ours - ref).max()


def test_openai_whisper_transcribes_speech_offline(engines, call_samples, monkeypatch):
    """The tokenizer's BPE file comes from openai-whisper's own assets: no network is touched."""
    import whisper.tokenizer as wt

    def no_network(*args, **kwargs):
        raise AssertionError("openai-whisper tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    wt.get_encoding.cache_clear()
    wt.get_tokenizer.cache_clear()
    tr = engines["openai-whisper"].transcribe([call_samples])
    assert word_error_rate(CALL_TEXT, tr.text) <= 0.1, tr.text
    assert tr.language == "en" and tr.engine == "openai-whisper" and tr.rtf > 0


def test_both_engines_give_the_same_interface(engines, call_samples):
    results: dict[str, Transcript] = {}
    for name, asr in engines.items():
        # a VAD segment starting 1.5 s into the call: word times are put back on the call's time line
        tr = asr.transcribe([call_samples], [1.5])
        assert isinstance(tr, Transcript) and tr.engine == name and tr.language == "en"
        assert tr.words and all(isinstance(w, Word) for w in tr.words)
        assert all(1.5 <= w.start <= w.end <= 1.5 + len(call_samples) / 16000 + 0.1 for w in tr.words)
        assert [w.start for w in tr.words] == sorted(w.start for w in tr.words)
        assert all(0.0 <= w.probability <= 1.0 for w in tr.words)
        assert word_error_rate(CALL_TEXT, tr.text) <= 0.1, (name, tr.text)
        results[name] = tr
    fw, ow = results["faster-whisper"], results["openai-whisper"]
    assert word_error_rate(fw.text, ow.text) <= 0.1, (fw.text, ow.text)  # same weights, same words
    if len(fw.words) == len(ow.words):
        assert max(abs(a.start - b.start) for a, b in zip(fw.words, ow.words)) < 0.3


def test_same_words_and_times_as_faster_whisper_float32(engines, call_samples):
    """Same weights, both in float32: the same words at the same times (int8 differs by a few 10 ms)."""
    ref = make_asr("faster-whisper", compute_type="float32").transcribe([call_samples])
    ours = engines["openai-whisper"].transcribe([call_samples])
    assert [w.text for w in ours.words] == [w.text for w in ref.words]
    assert max(max(abs(a.start - b.start), abs(a.end - b.end)) for a, b in zip(ours.words, ref.words)) <= 0.05


def test_default_openai_whisper_uses_the_converted_embedded_model(engines):
    from puyu_apps.paths import cache_dir

    asr = engines["openai-whisper"]
    assert asr.checkpoint.parent == cache_dir() / "whisper" and asr.checkpoint.name.startswith("openai-tiny.en-")
    assert int(asr.model.alignment_heads.to_dense().sum()) == 8  # the heads named in config.json


def _copy_model(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).symlink_to(f)
    return dst


def test_corrupt_ctranslate2_folder_is_a_typed_error(tmp_path):
    src = embedded_whisper_dir()
    out = tmp_path / "x.pt"

    truncated = _copy_model(src, tmp_path / "truncated")
    (truncated / "model.bin").unlink()
    with open(src / "model.bin", "rb") as f:
        (truncated / "model.bin").write_bytes(f.read(1_000_000))
    with pytest.raises(WhisperConversionError, match="truncated"):
        convert(truncated, out)

    garbage = _copy_model(src, tmp_path / "garbage")
    (garbage / "model.bin").unlink()
    (garbage / "model.bin").write_bytes(b"not a model at all" * 100)
    with pytest.raises(WhisperConversionError, match="binary version"):
        convert(garbage, out)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WhisperConversionError, match="no model.bin"):
        convert(empty, out)
    with pytest.raises(WhisperConversionError, match="not a folder"):
        convert(tmp_path / "missing", out)

    # a well-formed model.bin that is not a Whisper model
    other = tmp_path / "other"
    other.mkdir()
    name = b"TransformerSpec"
    (other / "model.bin").write_bytes(struct.pack("<IH", 6, len(name) + 1) + name + b"\0" + struct.pack("<III", 1, 0, 0))
    with pytest.raises(WhisperConversionError, match="not WhisperSpec"):
        convert(other, out)
    assert not out.exists()
    assert issubclass(WhisperConversionError, ModelLoadError)

    bad_ckpt = tmp_path / "bad.pt"
    bad_ckpt.write_bytes(b"\0" * 64)
    with pytest.raises(ModelLoadError, match="could not load"):
        make_asr("openai-whisper", checkpoint=bad_ckpt)


def test_int8_variables_are_dequantised(tmp_path):
    """An int8 CTranslate2 variable with its ``_scale`` reads back as float32 ``int8 / scale``."""
    def string(s: str) -> bytes:
        return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"

    w = np.array([[10, -20], [30, 40]], dtype=np.int8)
    scale = np.array([2.0, 4.0], dtype=np.float32)
    blob = struct.pack("<I", 6) + string("WhisperSpec") + struct.pack("<II", 1, 2)
    for name, arr, type_id in (("a/weight", w, 1), ("a/weight_scale", scale, 0)):
        blob += string(name) + struct.pack("<B", arr.ndim) + b"".join(struct.pack("<I", d) for d in arr.shape)
        blob += struct.pack("<BI", type_id, arr.nbytes) + arr.tobytes()
    blob += struct.pack("<I", 1) + string("b/weight") + string("a/weight")
    (tmp_path / "model.bin").write_bytes(blob)
    spec, variables = read_ctranslate2_model(tmp_path / "model.bin")
    assert spec == "WhisperSpec" and "a/weight_scale" not in variables
    np.testing.assert_allclose(variables["a/weight"], [[5, -10], [7.5, 10]])
    assert variables["b/weight"] is variables["a/weight"]


def test_unknown_asr_name_is_rejected_up_front():
    from puyu_apps.errors import InvalidInputError
    from puyu_apps.service import CustomerServicePipeline

    with pytest.raises(InvalidInputError, match="openai-whisper"):
        CustomerServicePipeline(model="tiny-random-llama", asr="whisper.cpp")
    with pytest.raises(ModelLoadError, match="no offline Whisper model"):
        embedded_whisper_dir("large-v3")


def test_cli_run_service_with_openai_whisper(call_wav, tmp_path, monkeypatch, capsys):
    import json

    from puyu_apps.cli import main

    monkeypatch.setenv("PUYU_APPS_CACHE", str(tmp_path))  # ticket store + a fresh conversion in the temp cache
    assert main(["run", "service", str(call_wav), "--asr", "openai-whisper", "--model", "tiny-random-llama",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert word_error_rate(CALL_TEXT, out["transcript"]) <= 0.1
    assert list((tmp_path / "whisper").glob("openai-tiny.en-*.pt"))
    assert main(["run", "service", str(call_wav), "--asr", "nope"]) == 2
    assert "asr must be one of" in capsys.readouterr().err
