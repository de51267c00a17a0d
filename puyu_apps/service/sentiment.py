"""Multimodal sentiment: a bilingual (English + Chinese) lexicon on the transcript, prosody on the voice
(loudness, pitch level and movement, speaking rate), and a documented rule that combines the two.

These are transparent heuristics, not a trained model; the weights below are the whole method.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

from .audio import SAMPLE_RATE, frame_energy_db

_POS_EN = {"thank", "thanks", "great", "good", "happy", "excellent", "perfect", "love", "helpful", "appreciate",
           "wonderful", "nice", "glad", "resolved", "works", "awesome", "pleased"}
_NEG_EN = {"bad", "broken", "late", "never", "wrong", "problem", "issue", "angry", "upset", "terrible", "awful",
           "worst", "hate", "useless", "ridiculous", "unacceptable", "disappointed", "annoyed", "frustrated",
           "complaint", "complain", "refund", "damaged", "missing", "fail", "failed", "failing", "scam", "rude",
           "waste", "still", "again", "delayed", "cancel", "poor", "slow", "furious", "disgusting", "lost"}
_STRONG_EN = {"furious", "unacceptable", "ridiculous", "worst", "hate", "scam", "terrible", "awful", "disgusting",
              "angry", "useless"}
_NEGATORS_EN = {"not", "no", "never", "don't", "doesn't", "didn't", "isn't", "wasn't", "won't", "can't", "hasn't"}
_POS_ZH = ["谢谢", "感谢", "满意", "很好", "不错", "好的", "解决了", "喜欢", "棒", "方便"]
_NEG_ZH = ["投诉", "生气", "愤怒", "太差", "很差", "垃圾", "退款", "坏了", "没有到", "没到", "延迟", "失望", "骗",
           "不满", "问题", "故障", "丢失", "破损", "又", "还是", "气死"]
_STRONG_ZH = ["愤怒", "垃圾", "气死", "骗", "太差"]


@dataclass
class VoiceFeatures:
    loudness_db: float      # mean RMS of voiced frames, dBFS
    pitch_hz: float         # median F0 of voiced frames (0 when none found)
    pitch_std_hz: float     # F0 movement
    speaking_rate_wps: float  # words per second of speech (0 when unknown)
    arousal: float          # 0 calm .. 1 agitated

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 3) for k, v in asdict(self).items()}


@dataclass
class Sentiment:
    label: str              # positive | neutral | negative | angry
    score: float            # -1 .. 1 (combined valence)
    text_score: float
    voice: VoiceFeatures | None = None


def text_sentiment(text: str) -> tuple[float, bool]:
    """Lexicon valence in [-1, 1] and whether a strong (anger) word occurred."""
    low = text.lower()
    words = re.findall(r"[a-z']+", low)
    pos = neg = 0.0
    strong = False
    for i, w in enumerate(words):
        negated = any(p in _NEGATORS_EN for p in words[max(0, i - 2): i])
        if w in _POS_EN:
            pos, neg = (pos, neg + 1) if negated else (pos + 1, neg)
        elif w in _NEG_EN:
            neg += 1.5 if w in _STRONG_EN else 1
            strong |= w in _STRONG_EN
    for term in _POS_ZH:
        n = low.count(term)
        if n and not any(f"{neg_}{term}" in low for neg_ in ("不", "没")):
            pos += n
    for term in _NEG_ZH:
        n = low.count(term)
        neg += n * (1.5 if term in _STRONG_ZH else 1)
        strong |= bool(n) and term in _STRONG_ZH
    strong |= text.count("!") + text.count("！") >= 2
    if pos + neg == 0:
        return 0.0, strong
    return float(np.clip((pos - neg) / (pos + neg + 1), -1, 1)), strong


def _pitch(frame: np.ndarray) -> float:
    """Autocorrelation F0 of one frame in 60..400 Hz, 0 when unvoiced."""
    x = frame - frame.mean()
    ac = np.correlate(x, x, mode="full")[len(x) - 1:]
    if ac[0] <= 0:
        return 0.0
    lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 60
    lag = lo + int(np.argmax(ac[lo:hi]))
    return SAMPLE_RATE / lag if ac[lag] / ac[0] > 0.45 else 0.0


def voice_features(samples: np.ndarray, n_words: int = 0) -> VoiceFeatures:
    """Prosody of 16 kHz mono speech. Arousal rises with loudness, high or moving pitch and fast speech."""
    frame = int(0.04 * SAMPLE_RATE)
    db = frame_energy_db(samples, frame)
    voiced = db > max(db.max() - 30, -55)
    n = len(samples) // frame
    idx = np.flatnonzero(voiced[:n])[:200]  # bounded work on long calls
    f0 = np.array([_pitch(samples[i * frame:(i + 1) * frame]) for i in idx])
    f0 = f0[f0 > 0]
    loud = float(db[voiced].mean()) if voiced.any() else -90.0
    pitch = float(np.median(f0)) if f0.size else 0.0
    pstd = float(f0.std()) if f0.size > 2 else 0.0
    speech_s = voiced.sum() * frame / SAMPLE_RATE
    rate = n_words / speech_s if n_words and speech_s > 0 else 0.0
    arousal = (0.4 * np.clip((loud + 30) / 25, 0, 1)                    # -30 dBFS calm .. -5 dBFS shouting
               + 0.25 * np.clip((pitch - 120) / 180, 0, 1)              # raised voice
               + 0.15 * np.clip(pstd / 60, 0, 1)                        # agitated melody
               + 0.2 * np.clip((rate - 2.5) / 2.0, 0, 1))               # fast talk
    return VoiceFeatures(loud, pitch, pstd, rate, float(arousal))


def combine(text: str, voice: VoiceFeatures | None = None) -> Sentiment:
    """Valence from the words, intensified by an agitated voice when the words are negative."""
    ts, strong = text_sentiment(text)
    score = ts
    arousal = voice.arousal if voice else 0.0
    if ts < 0:
        score = float(np.clip(ts * (1 + 0.6 * arousal), -1, 1))
    if score <= -0.45 and (strong or arousal >= 0.6) or (strong and score < -0.2):
        label = "angry"
    elif score < -0.15:
        label = "negative"
    elif score > 0.2:
        label = "positive"
    else:
        label = "neutral"
    return Sentiment(label=label, score=round(score, 3), text_score=round(ts, 3), voice=voice)
