"""Text to speech behind one interface, and sentence-by-sentence streaming.

Engines run the Debian programs ``espeak-ng`` (English ``en``, Mandarin ``cmn-latn-pinyin``) and ``flite``
(English). Coqui TTS does not import beside torch 2.13 here, so it is not offered. ``SentenceSpeaker`` turns a
stream of LLM text pieces into audio one sentence at a time: the first sentence is spoken while the rest of the
answer is still being generated.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import MissingDependencyError
from .audio import SAMPLE_RATE, load_audio
from .errors import SpeechEngineError

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；])")


@dataclass
class SpeechChunk:
    """One spoken sentence: its text, 16 kHz mono samples and when it was ready (seconds since start)."""

    text: str
    samples: np.ndarray
    ready_s: float

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


class TTSEngine(ABC):
    name = "tts"
    program = ""

    def __init__(self) -> None:
        if self.program and shutil.which(self.program) is None:
            raise MissingDependencyError(f"the TTS program {self.program!r} is not installed; install it with: "
                                         f"sudo apt-get install {self.program}")

    @abstractmethod
    def _command(self, text: str, language: str, out: Path) -> list[str]:
        """The command line that writes ``text`` spoken as a wav file at ``out``."""

    def synthesize(self, text: str, language: str = "en") -> np.ndarray:
        """``text`` -> 16 kHz mono float32 samples."""
        text = clean_for_speech(text)
        if not text:
            return np.zeros(0, dtype=np.float32)
        with tempfile.TemporaryDirectory(prefix="puyu-tts-") as tmp:
            out = Path(tmp) / "speech.wav"
            proc = subprocess.run(self._command(text, language, out), capture_output=True, timeout=120)
            if proc.returncode != 0 or not out.is_file():
                raise SpeechEngineError(f"{self.program} failed (exit {proc.returncode}): "
                                        f"{proc.stderr.decode(errors='replace')[:300]}")
            return load_audio(out, max_duration_s=600).samples

    def save(self, text: str, path: str | Path, language: str = "en") -> Path:
        from .audio import write_wav

        return write_wav(path, self.synthesize(text, language))


class EspeakTTS(TTSEngine):
    name = program = "espeak-ng"
    VOICES = {"en": "en-us", "zh": "cmn-latn-pinyin"}  # "cmn"/"zh" voices are broken in Debian 12

    def __init__(self, rate_wpm: int = 160) -> None:
        super().__init__()
        if not 80 <= rate_wpm <= 450:
            raise ValueError(f"EspeakTTS.rate_wpm must be in [80, 450], got {rate_wpm}")
        self.rate_wpm = rate_wpm

    def _command(self, text: str, language: str, out: Path) -> list[str]:
        voice = self.VOICES.get(language, language)
        return [self.program, "-v", voice, "-s", str(self.rate_wpm), "-w", str(out), "--", text]


class FliteTTS(TTSEngine):
    name = program = "flite"

    def __init__(self, voice: str = "slt") -> None:
        super().__init__()
        self.voice = voice

    def _command(self, text: str, language: str, out: Path) -> list[str]:
        if language != "en":
            raise SpeechEngineError(f"flite speaks English only, not {language!r}; use tts='espeak-ng'")
        return [self.program, "-voice", self.voice, "-t", text, "-o", str(out)]


TTS_ENGINES: dict[str, type[TTSEngine]] = {"espeak-ng": EspeakTTS, "flite": FliteTTS}


def make_tts(name: str = "espeak-ng") -> TTSEngine:
    if name not in TTS_ENGINES:
        raise ValueError(f"tts must be one of {sorted(TTS_ENGINES)}, got {name!r}")
    return TTS_ENGINES[name]()


def clean_for_speech(text: str) -> str:
    """Drop characters no voice can say (markup, control characters, emoji) and squeeze spaces."""
    text = re.sub(r"[*_#`<>\[\]{}|\\^~]", " ", text)
    text = "".join(ch for ch in text if ch.isprintable() and ord(ch) < 0x10000)
    return re.sub(r"\s+", " ", text).strip()


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def take_sentences(buf: str) -> tuple[list[str], str]:
    """The sentences completed at the start of ``buf`` (a stream of text so far) and the unfinished rest."""
    parts = _SENTENCE_END.split(buf)
    return parts[:-1], parts[-1]


class SentenceSpeaker:
    """Feed text pieces; every completed sentence is synthesised at once and handed to ``on_chunk``."""

    def __init__(self, engine: TTSEngine, language: str = "en",
                 on_chunk: Callable[[SpeechChunk], None] | None = None, min_chars: int = 12) -> None:
        self.engine, self.language, self.on_chunk, self.min_chars = engine, language, on_chunk, min_chars
        self.chunks: list[SpeechChunk] = []
        self._buf = ""
        self._t0 = time.perf_counter()
        self.synth_s = 0.0

    def feed(self, piece: str) -> list[SpeechChunk]:
        done, self._buf = take_sentences(self._buf + piece)
        if not done:
            return []
        ready = []
        pending = ""
        for sent in done:
            pending = f"{pending} {sent}".strip() if pending else sent.strip()
            if len(pending) >= self.min_chars:
                ready.append(self._speak(pending))
                pending = ""
        if pending:
            self._buf = f"{pending} {self._buf}"
        return [c for c in ready if c is not None]

    def flush(self) -> list[SpeechChunk]:
        text, self._buf = self._buf.strip(), ""
        chunk = self._speak(text) if text else None
        return [chunk] if chunk is not None else []

    def discard(self) -> str:
        """Drop the unfinished sentence (a reply cut by the token limit is not spoken half-way)."""
        text, self._buf = self._buf, ""
        return text

    def _speak(self, text: str) -> SpeechChunk | None:
        t = time.perf_counter()
        samples = self.engine.synthesize(text, self.language)
        self.synth_s += time.perf_counter() - t
        if samples.size == 0:
            return None
        chunk = SpeechChunk(text=text, samples=samples, ready_s=time.perf_counter() - self._t0)
        self.chunks.append(chunk)
        if self.on_chunk is not None:
            self.on_chunk(chunk)
        return chunk

    def speak_stream(self, pieces: Iterable[str]) -> Iterator[SpeechChunk]:
        for piece in pieces:
            yield from self.feed(piece)
        yield from self.flush()

    @property
    def audio(self) -> np.ndarray:
        if not self.chunks:
            return np.zeros(0, dtype=np.float32)
        gap = np.zeros(int(0.15 * SAMPLE_RATE), dtype=np.float32)
        parts: list[np.ndarray] = []
        for c in self.chunks:
            parts += [c.samples, gap]
        return np.concatenate(parts[:-1])
