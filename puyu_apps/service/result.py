"""The typed result of one customer-service turn; ``save(path)`` writes the spoken reply."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from pydantic import PrivateAttr

from ..errors import InvalidInputError
from ..pipelines.result import PipelineResult


class ServiceTurnResult(PipelineResult):
    session_id: str
    turn_index: int
    channel: str                       # "voice" | "text"
    language: str
    transcript: str
    words: list[dict[str, Any]] = []   # [{"text", "start", "end", "probability"}], seconds in the call
    speech_regions_s: list[list[float]] = []
    sentiment: str
    sentiment_score: float
    text_sentiment_score: float
    voice_features: dict[str, float] | None = None
    intent: str
    intent_confidence: float
    model_intent: str | None = None    # the adapter's "intent:" line (None: the model wrote none, e.g. the base)
    escalated: bool
    escalation_reason: str = ""
    reply: str
    faq_ids: list[str] = []
    faq_appended: bool = False         # grounding="append" added the best FAQ answer the model had not stated
    dropped_sentences: list[str] = []  # check_numbers: sentences of the model's reply that stated a number found
                                       # neither in the caller's words, the conversation nor the facts (not spoken)
    reply_sentences: list[str] = []
    reply_audio_s: float = 0.0
    time_to_first_audio_s: float | None = None
    llm_prompt_tokens: int = 0         # re-encoded every turn (KV-cache reuse across turns: later engine work)
    llm_completion_tokens: int = 0
    llm_reusable_tokens: int = 0       # leading prompt tokens equal to the last turn's prompt + reply
    llm_cached_tokens: int = 0         # prompt tokens the engine did not read again (KV reused; llama.cpp backend)
    interrupted: bool = False          # the caller barged in and generation was stopped
    ticket_turn_id: int | None = None
    ticket_saved: bool = False
    outbox_pending: int = 0

    _audio: Any = PrivateAttr(default=None)

    @property
    def reply_audio(self) -> Any:
        """16 kHz mono float32 samples of the spoken reply (None when speech was off)."""
        return self._audio

    def save(self, path: str | Path) -> Path:
        """Write the spoken reply as audio (format from the suffix: .wav, .flac, .ogg)."""
        if self._audio is None or len(self._audio) == 0:
            raise InvalidInputError("this turn has no reply audio (the pipeline ran with tts=None); "
                                    "construct it with tts='espeak-ng' or write --out reply.json")
        from .audio import write_wav

        return write_wav(path, self._audio)

    def to_text(self) -> str:
        esc = f"ESCALATED ({self.escalation_reason})" if self.escalated else "not escalated"
        return (f"[{self.session_id} #{self.turn_index}] {self.channel} / {self.language}\n"
                f"caller: {self.transcript}\n"
                f"sentiment: {self.sentiment} ({self.sentiment_score:+.2f}) | intent: {self.intent}"
                f"{f' (model: {self.model_intent})' if self.model_intent else ''} | {esc}\n"
                f"reply: {self.reply}")

    def to_html(self) -> str:
        e = html.escape
        words = " ".join(f'<span title="{w["start"]:.2f}-{w["end"]:.2f}s">{e(w["text"])}</span>'
                         for w in self.words) or e(self.transcript)
        return (f"<!doctype html><meta charset='utf-8'><title>Ticket {e(self.session_id)}</title>"
                f"<h1>Turn {self.turn_index} of {e(self.session_id)}</h1>"
                f"<p><b>Caller</b> ({e(self.channel)}, {e(self.language)}): {words}</p>"
                f"<p><b>Sentiment</b> {e(self.sentiment)} ({self.sentiment_score:+.2f}); <b>intent</b> "
                f"{e(self.intent)}; <b>escalated</b> {self.escalated} {e(self.escalation_reason)}</p>"
                f"<p><b>Reply</b>: {e(self.reply)}</p>")
