"""Audio in: any soundfile format, any rate / channel count -> 16 kHz mono float32; energy VAD.

``load_audio`` accepts a path, raw bytes or a numpy array and never reads more than ``max_duration_s`` of audio
(the header is checked first, so a one-hour file is refused before it is decoded).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np

from .errors import AudioTooLongError, EmptyAudioError, NotAudioError, SilentAudioError

SAMPLE_RATE = 16_000
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".mp3")


@dataclass
class AudioClip:
    """16 kHz mono float32 samples in [-1, 1] plus what was noticed on the way in."""

    samples: np.ndarray  # [N] float32
    source: str = "<array>"
    original_rate: int = SAMPLE_RATE
    original_channels: int = 1
    warnings: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


@dataclass
class VADConfig:
    """Energy voice-activity detection. ``threshold_db`` is relative to the loudest frame; ``floor_db`` absolute."""

    frame_ms: float = 30.0
    threshold_db: float = -35.0
    floor_db: float = -55.0
    min_speech_ms: float = 120.0
    min_silence_ms: float = 350.0
    pad_ms: float = 120.0
    max_segment_s: float = 25.0

    def __post_init__(self) -> None:
        if not 5 <= self.frame_ms <= 100:
            raise ValueError(f"VADConfig.frame_ms must be in [5, 100], got {self.frame_ms}")
        if self.threshold_db >= 0:
            raise ValueError(f"VADConfig.threshold_db must be < 0 (dB below the loudest frame), got {self.threshold_db}")
        if self.max_segment_s < 1:
            raise ValueError(f"VADConfig.max_segment_s must be >= 1, got {self.max_segment_s}")


def resample(x: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (scipy ``resample_poly``) from ``rate`` to ``target``."""
    if rate == target:
        return x.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = gcd(int(rate), int(target))
    return resample_poly(x, target // g, rate // g).astype(np.float32)


def _to_mono(data: np.ndarray) -> np.ndarray:
    # data: [N] or [N, C]
    return data.mean(axis=1) if data.ndim == 2 else data


def load_audio(source: Any, *, rate: int | None = None, max_duration_s: float = 1200.0,
               name: str | None = None) -> AudioClip:
    """Read ``source`` (path, bytes, file object or numpy array with ``rate``) into a 16 kHz mono clip.

    Raises :class:`NotAudioError`, :class:`EmptyAudioError` or :class:`AudioTooLongError`; clipped audio is
    accepted with a warning on the clip.
    """
    if isinstance(source, np.ndarray):
        if rate is None:
            raise ValueError("load_audio: pass rate=<sample rate> with a numpy array")
        data, sr, label = np.asarray(source), int(rate), name or "<array>"
        if data.dtype.kind in "iu":
            info = np.iinfo(data.dtype)
            data = (data.astype(np.float32) - (info.max + info.min + 1) / 2) / ((info.max - info.min + 1) / 2)
        if data.ndim == 2 and data.shape[0] < data.shape[1] and data.shape[0] <= 8:
            data = data.T  # [C, N] -> [N, C]
        if len(data) / max(sr, 1) > max_duration_s:
            raise AudioTooLongError(f"{label}: {len(data) / sr:.0f} s of audio exceeds max_duration_s="
                                    f"{max_duration_s:.0f}; split the call or raise the bound")
        channels = 1 if data.ndim == 1 else data.shape[1]
    else:
        sf = _soundfile()
        label = name or (str(source) if isinstance(source, (str, Path)) else "<bytes>")
        if isinstance(source, (bytes, bytearray)):
            fobj: Any = io.BytesIO(bytes(source))
        else:
            fobj = source
            if isinstance(source, (str, Path)) and not Path(source).is_file():
                raise NotAudioError(f"{label}: no such file; pass the path of a wav/flac/ogg recording")
        try:
            info = sf.info(fobj)
        except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError for anything unreadable
            raise NotAudioError(f"{label}: not a readable audio file ({exc}); send wav, flac or ogg audio") from exc
        if info.frames == 0 or info.samplerate <= 0:
            raise EmptyAudioError(f"{label}: the audio holds no samples; record the call again")
        if info.frames / info.samplerate > max_duration_s:
            raise AudioTooLongError(f"{label}: {info.frames / info.samplerate:.0f} s of audio exceeds "
                                    f"max_duration_s={max_duration_s:.0f}; split the call or raise the bound")
        if hasattr(fobj, "seek"):
            fobj.seek(0)
        try:
            data, sr = sf.read(fobj, dtype="float32", always_2d=False)
        except Exception as exc:
            raise NotAudioError(f"{label}: the audio could not be decoded ({exc}); re-export it as wav") from exc
        channels = info.channels
    data = np.asarray(data, dtype=np.float32)
    if data.size == 0:
        raise EmptyAudioError(f"{label}: the audio holds no samples; record the call again")
    if not np.isfinite(data).all():
        raise NotAudioError(f"{label}: the samples contain NaN or infinity; re-export the audio")
    warnings: list[str] = []
    peak = np.abs(data)
    clipped = float((peak >= 0.999).mean())
    if clipped > 0.001:
        warnings.append(f"{label}: {clipped:.1%} of the samples are clipped (at full scale); transcription and "
                        f"voice sentiment may be less accurate. Lower the recording gain")
    mono = _to_mono(data)
    out = resample(mono, sr)
    return AudioClip(samples=out, source=label, original_rate=sr, original_channels=channels, warnings=warnings)


def _soundfile() -> Any:
    from .._optional import require

    return require("soundfile", "service")


def frame_energy_db(x: np.ndarray, frame: int) -> np.ndarray:
    """RMS level of consecutive frames in dB full scale. x: [N] -> [N // frame]."""
    n = len(x) // frame
    if n == 0:
        return np.full(1, 20 * np.log10(np.sqrt(np.mean(x ** 2)) + 1e-10))
    frames = x[: n * frame].reshape(n, frame)  # [F, frame]
    return 20 * np.log10(np.sqrt((frames ** 2).mean(axis=1)) + 1e-10)


def detect_speech(clip: AudioClip, config: VADConfig | None = None) -> list[tuple[float, float]]:
    """Speech regions ``[(start_s, end_s)]``: frames above the threshold, short gaps bridged, each region at most
    ``max_segment_s`` long (long calls are split). Raises :class:`SilentAudioError` when none is found."""
    cfg = config or VADConfig()
    frame = int(SAMPLE_RATE * cfg.frame_ms / 1000)
    db = frame_energy_db(clip.samples, frame)
    thr = max(float(db.max()) + cfg.threshold_db, cfg.floor_db)
    active = db > thr
    if not active.any():
        raise SilentAudioError(f"{clip.source}: no speech found (loudest frame {db.max():.0f} dBFS, threshold "
                               f"{cfg.floor_db:.0f} dBFS); check the microphone or send a text ticket")
    gap = int(cfg.min_silence_ms / cfg.frame_ms)
    regions: list[list[int]] = []
    for i in np.flatnonzero(active):
        if regions and i - regions[-1][1] <= gap:
            regions[-1][1] = i + 1
        else:
            regions.append([int(i), int(i) + 1])
    min_frames = cfg.min_speech_ms / cfg.frame_ms
    regions = [r for r in regions if r[1] - r[0] >= min_frames]
    if not regions:
        raise SilentAudioError(f"{clip.source}: only clicks, no speech longer than {cfg.min_speech_ms:.0f} ms; "
                               f"send a longer recording or a text ticket")
    pad = cfg.pad_ms / 1000
    step = frame / SAMPLE_RATE
    out: list[tuple[float, float]] = []
    for a, b in regions:
        start, end = max(0.0, a * step - pad), min(clip.duration_s, b * step + pad)
        while end - start > cfg.max_segment_s:  # split long stretches into bounded segments
            cut = _quietest_cut(db, start, start + cfg.max_segment_s, step)
            out.append((start, cut))
            start = cut
        out.append((start, end))
    return out


def _quietest_cut(db: np.ndarray, start: float, end: float, step: float) -> float:
    """The quietest frame in the last third of ``[start, end]``: a natural place to split."""
    a, b = int((start + (end - start) * 2 / 3) / step), int(end / step)
    if b <= a:
        return end
    return (a + int(np.argmin(db[a:b]))) * step


def trim(clip: AudioClip, regions: list[tuple[float, float]]) -> list[np.ndarray]:
    """The samples of each speech region."""
    return [clip.samples[int(s * SAMPLE_RATE): int(e * SAMPLE_RATE)] for s, e in regions]


def write_wav(path: str | Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    sf = _soundfile()
    path = Path(path)
    sf.write(str(path), np.asarray(samples, dtype=np.float32), rate, subtype="PCM_16")
    return path
