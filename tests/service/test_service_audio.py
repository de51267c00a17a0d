import numpy as np
import pytest
import soundfile as sf

from puyu_apps.errors import InvalidInputError
from puyu_apps.service.audio import SAMPLE_RATE, AudioClip, VADConfig, detect_speech, load_audio, trim
from puyu_apps.service.errors import (AudioTooLongError, EmptyAudioError, NotAudioError, SilentAudioError)


def tone(freq=440.0, seconds=1.0, rate=SAMPLE_RATE, amp=0.3):
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_hz(x, rate=SAMPLE_RATE):
    spec = np.abs(np.fft.rfft(x))
    return np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spec)]


@pytest.mark.parametrize("suffix,subtype,rate,channels", [
    (".wav", "PCM_16", 44100, 2), (".wav", "PCM_U8", 8000, 1), (".flac", "PCM_16", 22050, 1),
    (".ogg", "VORBIS", 48000, 2), (".wav", "FLOAT", 16000, 1)])
def test_any_format_rate_channels_to_16k_mono(tmp_path, suffix, subtype, rate, channels):
    x = tone(440, 1.0, rate)
    data = np.stack([x] * channels, axis=1) if channels > 1 else x
    path = tmp_path / f"a{suffix}"
    sf.write(path, data, rate, subtype=subtype)
    clip = load_audio(path)
    assert clip.samples.ndim == 1 and clip.samples.dtype == np.float32
    assert abs(clip.duration_s - 1.0) < 0.02
    assert (clip.original_rate, clip.original_channels) == (rate, channels)
    assert abs(dominant_hz(clip.samples) - 440) < 5  # resampling kept the pitch


def test_bytes_and_int_array_inputs(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, tone(), SAMPLE_RATE)
    assert abs(load_audio(path.read_bytes()).duration_s - 1.0) < 0.01
    pcm = (tone() * 32767).astype(np.int16)
    clip = load_audio(pcm, rate=SAMPLE_RATE)
    assert np.abs(clip.samples - tone()).max() < 1e-3
    with pytest.raises(ValueError, match="rate"):
        load_audio(pcm)


def test_empty_audio(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, np.float32), SAMPLE_RATE)
    with pytest.raises(EmptyAudioError, match="empty.wav"):
        load_audio(path)
    with pytest.raises(EmptyAudioError):
        load_audio(np.zeros(0, np.float32), rate=SAMPLE_RATE)


def test_non_audio_bytes_and_missing_file(tmp_path):
    junk = tmp_path / "ticket.wav"
    junk.write_bytes(b"%PDF-1.4 this is not audio at all" * 10)
    with pytest.raises(NotAudioError, match="ticket.wav") as exc:
        load_audio(junk)
    assert isinstance(exc.value, InvalidInputError)
    with pytest.raises(NotAudioError):
        load_audio(b"\x00\x01 random bytes")
    with pytest.raises(NotAudioError, match="no such file"):
        load_audio(tmp_path / "missing.wav")


def test_pure_silence_and_hum(tmp_path):
    with pytest.raises(SilentAudioError, match="no speech"):
        detect_speech(AudioClip(np.zeros(SAMPLE_RATE * 2, np.float32)))
    quiet = (np.random.default_rng(0).normal(0, 1e-4, SAMPLE_RATE * 2)).astype(np.float32)  # -80 dBFS noise
    with pytest.raises(SilentAudioError):
        detect_speech(AudioClip(quiet))


def test_clipped_audio_warns():
    x = np.clip(tone(amp=3.0), -1, 1)
    clip = load_audio(x, rate=SAMPLE_RATE, name="loud.wav")
    assert clip.warnings and "clipped" in clip.warnings[0] and "loud.wav" in clip.warnings[0]
    assert not load_audio(tone(), rate=SAMPLE_RATE).warnings


def test_huge_file_refused_from_header(tmp_path):
    path = tmp_path / "hour.wav"
    with sf.SoundFile(path, "w", 8000, 1, subtype="PCM_U8") as f:  # one hour, 8-bit, 8 kHz: 28.8 MB
        block = np.zeros(8000 * 60, np.float32)
        for _ in range(60):
            f.write(block)
    with pytest.raises(AudioTooLongError, match="3600 s"):
        load_audio(path, max_duration_s=1200)


def test_vad_trims_silence_and_splits_long_speech():
    gap = np.zeros(SAMPLE_RATE, np.float32)
    x = np.concatenate([gap, tone(200, 0.8), gap, tone(300, 0.8), gap])
    regions = detect_speech(AudioClip(x))
    assert len(regions) == 2
    (a0, a1), (b0, b1) = regions
    assert 0.8 < a0 < 1.0 and 1.8 < a1 < 2.0 and 2.6 < b0 < 2.8 and 3.6 < b1 < 3.8
    segs = trim(AudioClip(x), regions)
    assert sum(len(s) for s in segs) < 0.6 * len(x)
    # a 7 s stretch of continuous "speech" is cut into segments of at most max_segment_s
    long = tone(250, 7.0)
    regions = detect_speech(AudioClip(long), VADConfig(max_segment_s=3))
    assert len(regions) >= 3 and all(e - s <= 3.0 + 1e-6 for s, e in regions)
    assert regions[0][0] == 0.0 and abs(regions[-1][1] - 7.0) < 0.01


def test_vad_config_validation():
    with pytest.raises(ValueError, match="threshold_db"):
        VADConfig(threshold_db=3)


from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=15, deadline=None)
@given(rate=st.sampled_from([8000, 11025, 16000, 22050, 32000, 44100, 48000]), channels=st.integers(1, 4),
       seconds=st.floats(0.05, 1.5))
def test_any_rate_any_channels_keeps_duration(rate, channels, seconds):
    n = max(1, int(seconds * rate))
    x = np.random.default_rng(rate + channels).uniform(-0.5, 0.5, (n, channels)).astype(np.float32)
    clip = load_audio(x, rate=rate)
    assert clip.samples.ndim == 1 and clip.original_channels == channels
    assert abs(len(clip.samples) - n * SAMPLE_RATE / rate) <= 1
