"""``CustomerServicePipeline``: one caller turn (voice file, audio bytes/array or text ticket) -> transcript ->
sentiment + intent + escalation -> FAQ-grounded LLM reply spoken sentence by sentence -> ticket store.

The transcript is written to the ticket store before the LLM runs; a failing later step marks the turn "failed"
with the error, and a database that is down leaves the turn in ``self.outbox`` (flushed on the next turn or by
``flush_outbox()``) while the caller still gets an answer.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..core import GenerationConfig
from ..errors import InvalidInputError
from ..paths import cache_dir
from ..pipelines.base import Pipeline
from .audio import AUDIO_SUFFIXES, VADConfig, detect_speech, load_audio, trim
from .errors import SilentAudioError, TicketStoreError
from .grounding import NumberGuard, keep_grounded
from .intent import EscalationPolicy, classify_intent, is_complaint
from .prompting import IntentLineFilter, ServicePrompts, build_messages, detect_language, split_intent
from .result import ServiceTurnResult
from .training_data import score_output

#: grounding="append" states the best FAQ answer after an adapter reply that stated none of it when the entry
#: matches at least this share of the caller's terms: 18 % of the generated turns the facts answer match this
#: strongly, under 1 % of those they do not (tests/service/test_service_training_data.py measures both)
STRONG_MATCH = 0.4


def missing_answer(reply: str, hits: list, lang: str, *, adapter: bool) -> str | None:
    """The best FAQ answer that ``grounding="append"`` adds to ``reply``, or None when the reply stands.

    A free-form reply (the base model) gets it when the entry matches at all (0.2) and the reply does not state
    half its terms. The adapter (an intent line) chooses between a fact and a hand-over itself, and its words
    stand unless they state none of the entry's sentences although the entry matches strongly (a 135M model hands
    over on some requests the facts answer, and which way it goes can turn on the engine's rounding).
    """
    from .knowledge import terms
    from .tts import split_sentences

    if not hits:
        return None
    answer, said = hits[0][0].answer_for(lang), terms(reply)
    if not adapter:
        missing = hits[0][1] >= 0.2 and len(terms(answer) & said) < 0.5 * len(terms(answer))
    else:
        missing = hits[0][1] >= STRONG_MATCH and not any(
            len(terms(s) & said) >= 0.5 * len(terms(s)) for s in split_sentences(answer) if terms(s))
    return answer if missing else None


@dataclass
class Session:
    """The conversation so far: what the caller said and what they were told (and heard)."""

    id: str
    history: list[dict[str, str]] = field(default_factory=list)
    complaints: int = 0
    turns: int = 0
    last_ids: list[int] = field(default_factory=list)  # token ids of the last prompt + reply


def shared_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens two sequences share: what a KV cache kept from the last turn could skip."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def complete_sentences(text: str) -> str:
    """``text`` up to its last sentence end (all of it when it has none)."""
    cut = max(text.rfind(c) for c in ".!?。！？")
    return text[: cut + 1].strip() if cut > 0 else text.strip()


class CustomerServicePipeline(Pipeline):
    name = "service"
    description = "Customer service: voice or text ticket -> ASR -> sentiment/intent -> LLM (FAQ) -> TTS, tickets"
    result_type = ServiceTurnResult
    #: ``puyu eval --vertical service``: intent accuracy / macro-F1, fact grounding, reply language, format
    eval_scorer = staticmethod(score_output)

    def __init__(self, *, asr: str = "faster-whisper", tts: str | None = "espeak-ng", db_url: str | None = None,
                 faq_path: str | None = None, max_new_tokens: int = 80, max_duration_s: float = 1200.0,
                 history_turns: int = 4, max_complaints: int = 2, grounding: str = "append",
                 check_numbers: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if history_turns < 0:
            raise ValueError(f"history_turns must be >= 0, got {history_turns}")
        if grounding not in ("append", "llm"):
            raise ValueError(f"grounding must be 'append' (state the matching FAQ answer when the model did not) "
                             f"or 'llm' (the model's words only), got {grounding!r}")
        self.grounding = grounding
        #: drop (and never speak) a reply's sentences that state a number the prompt did not contain
        #: (:mod:`.grounding`); ``result.dropped_sentences`` lists them
        self.check_numbers = check_numbers
        from .asr import ASR_ENGINES

        if asr not in ASR_ENGINES:  # InvalidInputError is a ValueError; the CLI prints it without a traceback
            raise InvalidInputError(f"asr must be one of {', '.join(sorted(ASR_ENGINES))}, got {asr!r}")
        if max_duration_s <= 0:
            raise ValueError(f"max_duration_s must be > 0, got {max_duration_s}")
        self.asr_name, self.tts_name, self.db_url, self.faq_path = asr, tts, db_url, faq_path
        self.max_new_tokens, self.max_duration_s, self.history_turns = max_new_tokens, max_duration_s, history_turns
        self.max_complaints = max_complaints
        self.policy = EscalationPolicy(max_complaints)
        self.sessions: dict[str, Session] = {}
        self.outbox: list[dict[str, Any]] = []
        self.on_audio: Callable[[Any], None] | None = None  # called with each SpeechChunk as soon as it is ready
        self.cancel = threading.Event()  # set by a voice loop when the caller barges in: generation stops
        self._asr: Any = None
        self._tts: Any = None
        self._store: Any = None
        self._kb: Any = None
        self._manifest: dict[str, Any] = {}
        self._system_template = self._user_template = ""

    def init_parameters(self) -> dict[str, Any]:
        return {**super().init_parameters(), "asr": self.asr_name, "tts": self.tts_name, "db_url": self.db_url,
                "faq_path": self.faq_path, "max_new_tokens": self.max_new_tokens,
                "max_duration_s": self.max_duration_s, "history_turns": self.history_turns,
                "max_complaints": self.max_complaints, "grounding": self.grounding,
                "check_numbers": self.check_numbers}

    # -- components ---------------------------------------------------------------------------------------
    def load_components(self) -> None:
        from .tickets import TicketStore
        from .tts import make_tts

        prompts = ServicePrompts.load(self.faq_path, self.name)
        self._manifest, self._kb = prompts.manifest, prompts.kb
        self._system_template, self._user_template = prompts.system, prompts.user
        self._tts = make_tts(self.tts_name) if self.tts_name else None
        url = self.db_url
        if url is None:
            (cache_dir() / "service").mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{cache_dir() / 'service' / 'tickets.db'}"
        self._store = TicketStore(url)

    @property
    def asr(self) -> Any:
        """The ASR engine, loaded on the first voice turn (text tickets never load it)."""
        if self._asr is None:
            from .asr import make_asr

            self.progress("asr", f"loading {self.asr_name}")
            self._asr = make_asr(self.asr_name)
        return self._asr

    @property
    def store(self) -> Any:
        self.warm_up()
        return self._store

    def session(self, session_id: str | None = None) -> Session:
        sid = session_id or uuid.uuid4().hex[:12]
        return self.sessions.setdefault(sid, Session(sid))

    # -- stages -------------------------------------------------------------------------------------------
    def preprocess(self, inputs: Any, *, session_id: str | None = None, rate: int | None = None,
                   language: str | None = None, customer: str | None = None, **params: Any) -> dict[str, Any]:
        import numpy as np

        if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(x, str) for x in inputs):
            if any(Path(x).is_file() for x in inputs):
                raise InvalidInputError("the service answers one call at a time; for several files in one "
                                        "conversation use `puyu service talk FILE...`")
            inputs = " ".join(inputs)  # several CLI words form one ticket
        prepared: dict[str, Any] = {"session_id": session_id, "language": language, "customer": customer,
                                    "warnings": []}
        is_path = isinstance(inputs, Path) or (isinstance(inputs, str) and (
            inputs.lower().endswith(AUDIO_SUFFIXES) or ("\n" not in inputs and len(inputs) < 4096
                                                        and Path(inputs).is_file())))
        if isinstance(inputs, (bytes, bytearray, np.ndarray)) or is_path:
            clip = load_audio(inputs, rate=rate, max_duration_s=self.max_duration_s)
            regions = detect_speech(clip, VADConfig())
            prepared.update(channel="voice", clip=clip, regions=regions, segments=trim(clip, regions))
            prepared["warnings"] += clip.warnings
        elif isinstance(inputs, str):
            if not inputs.strip():
                raise InvalidInputError("the ticket text is empty; pass the caller's message or an audio file")
            prepared.update(channel="text", text=inputs.strip())
        else:
            raise InvalidInputError(f"service input must be an audio path, bytes, a numpy array or ticket text, "
                            f"got {type(inputs).__name__}")
        return prepared

    def _forward(self, prepared: dict[str, Any]) -> dict[str, Any]:
        from .sentiment import combine, voice_features

        out: dict[str, Any] = {"warnings": list(prepared["warnings"]), "channel": prepared["channel"], "words": [],
                               "regions": [], "voice": None}
        timings: dict[str, float] = {}
        self.cancel.clear()
        self.flush_outbox()
        sess = self.session(prepared["session_id"])
        if prepared["channel"] == "voice":
            self.progress("asr", "transcribing", 0.1)
            offsets = [s for s, _ in prepared["regions"]]
            tr = self.asr.transcribe(prepared["segments"], offsets, prepared["language"])
            timings.update(asr=tr.elapsed_s, asr_rtf=tr.rtf, audio=prepared["clip"].duration_s)
            if not tr.text.strip():
                raise SilentAudioError(f"{prepared['clip'].source}: no words were recognised in the speech; "
                                       f"send a clearer recording or a text ticket")
            text = tr.text
            out["words"] = [{"text": w.text, "start": round(w.start, 3), "end": round(w.end, 3),
                             "probability": round(w.probability, 3)} for w in tr.words]
            out["regions"] = [[round(a, 3), round(b, 3)] for a, b in prepared["regions"]]
        else:
            text = prepared["text"]
        lang = prepared["language"] or detect_language(text)
        sess.turns += 1
        out.update(session=sess, turn_index=sess.turns, transcript=text, language=lang)
        # 1. the caller's words are stored before anything else can fail
        turn_id = self._store_call("open_turn", sess.id, sess.turns, prepared["channel"], text, out["words"],
                                   prepared["customer"], out=out)
        out["turn_id"] = turn_id
        try:
            if prepared["channel"] == "voice":
                out["voice"] = voice_features(prepared["clip"].samples, len(out["words"]))
            senti = combine(text, out["voice"])
            intent = classify_intent(text)
            if is_complaint(senti.label, intent.label):
                sess.complaints += 1
            escalate, reason = self.policy.decide(senti.label, intent.label, sess.complaints)
            out.update(sentiment=senti, intent=intent, escalated=escalate, reason=reason)
            self.progress("reply", "generating the answer", 0.5)
            reply = self._reply(sess, text, lang, escalate, out, timings)
        except Exception as exc:
            self._store_call("close_turn", turn_id, status="failed", error=f"{type(exc).__name__}: {exc}", out=out)
            raise
        self._store_call("close_turn", turn_id, sentiment=senti.label, sentiment_score=senti.score,
                         intent=intent.label, reply=reply, escalated=escalate, escalation_reason=reason, out=out)
        sess.history += [{"role": "user", "content": text}, {"role": "assistant", "content": reply}]
        out.update(reply=reply, timings=timings)
        return out

    def _reply(self, sess: Session, text: str, lang: str, escalate: bool, out: dict[str, Any],
               timings: dict[str, float]) -> str:
        import time

        from .tts import SentenceSpeaker, clean_for_speech

        hits = self._kb.search(text, k=2)
        out["faq_ids"] = [e.id for e, _ in hits]
        keep = sess.history[-2 * self.history_turns:] if self.history_turns else []
        messages = self.build_messages(text, lang, hits, keep)
        prompt_text = self.lm.format_prompt(messages)
        prompt_ids = self.lm.encode(prompt_text)[0].tolist()
        # numbers the reply may state: those of its prompt (the caller's words, the history, the facts)
        guard = NumberGuard.for_sources(prompt_text) if self.check_numbers else None
        out["reusable_tokens"] = shared_prefix(sess.last_ids, prompt_ids)
        # the history is a transcript inside the user message: stop if the model starts writing the caller's part
        cfg = GenerationConfig(max_new_tokens=self.max_new_tokens, temperature=0.0, repetition_penalty=1.1,
                               stop=["\nCustomer:"])
        speaker = SentenceSpeaker(self._tts, lang, self.on_audio) if self._tts else None
        t0 = time.perf_counter()
        ts = self.lm.stream(messages, cfg, adapter=self._adapter_name)
        first_audio = None
        pieces, it = [], iter(ts)
        head = IntentLineFilter()  # the adapter's "intent: X" line is recorded, never spoken
        for piece in it:
            pieces.append(piece)
            spoken = head.feed(piece)
            if guard is not None:
                spoken = guard.feed(spoken)
            if speaker is not None and spoken and speaker.feed(spoken) and first_audio is None:
                first_audio = time.perf_counter() - t0
            if self.cancel.is_set():  # barge-in: stop decoding (closing the generator releases the model)
                it.close()
                out["interrupted"] = True
                break
        model_intent, reply = split_intent(ts.result.text if ts.result else "".join(pieces))
        out["model_intent"] = model_intent
        tail = head.finish()  # a short reply still held back as a possible intent line
        if guard is not None:
            tail = guard.feed(tail)
        if tail and speaker is not None and not out.get("interrupted"):
            speaker.feed(tail)
        if out.get("interrupted"):
            timings["llm"] = time.perf_counter() - t0
            timings["time_to_first_audio"] = first_audio if first_audio is not None else -1.0
            out["audio"] = speaker.audio if speaker is not None else None
            out["sentences"] = [c.text for c in speaker.chunks] if speaker is not None else []
            return self._without_made_up_numbers(reply, guard, out)
        timings["llm"] = time.perf_counter() - t0 - (speaker.synth_s if speaker else 0.0)
        if ts.result is not None:
            timings["llm_ttft"] = ts.result.ttft_s
            out["llm_tokens"] = (ts.result.prompt_tokens, ts.result.completion_tokens)
            out["cached_tokens"] = ts.result.cached_tokens
            sess.last_ids = prompt_ids + list(ts.result.token_ids)
        if ts.result is not None and ts.result.finish_reason == "length":
            reply = complete_sentences(reply)  # cut by the token limit: keep (and speak) whole sentences only
            if speaker is not None:
                speaker.discard()
            if guard is not None:
                guard.discard()
        elif guard is not None and speaker is not None:
            speaker.feed(guard.finish())  # the last sentence, once it is known to be complete
        reply = self._without_made_up_numbers(reply, guard, out)
        answer = (missing_answer(reply, hits, lang, adapter=model_intent is not None)
                  if self.grounding == "append" and clean_for_speech(reply) else None)
        if answer:
            reply = f"{reply} {answer}".strip()
            out["faq_appended"] = True
            if speaker is not None:
                speaker.feed(" " + answer + " ")
        if not clean_for_speech(reply):  # the model said nothing usable: answer from the FAQ, say so
            fallback = hits[0][0].answer_for(lang) if hits else self._manifest["fallback"].get(lang, "")
            out["warnings"].append("the language model produced no usable text; the reply is the best FAQ answer")
            reply = fallback or self._manifest["fallback"]["en"]
            if speaker is not None:
                speaker.feed(reply + " ")
        if escalate:
            handoff = self._manifest["handoff"].get(lang, self._manifest["handoff"]["en"])
            reply = f"{reply} {handoff}".strip()
            if speaker is not None:
                speaker.feed(" " + handoff)
        if speaker is not None:
            speaker.flush()
            if first_audio is None and speaker.chunks:
                first_audio = time.perf_counter() - t0
            timings["tts"] = speaker.synth_s
            out["audio"] = speaker.audio
            out["sentences"] = [c.text for c in speaker.chunks]
        timings["time_to_first_audio"] = first_audio if first_audio is not None else -1.0
        return reply

    @staticmethod
    def _without_made_up_numbers(reply: str, guard: NumberGuard | None, out: dict[str, Any]) -> str:
        if guard is None:
            return reply
        reply, dropped, made_up = keep_grounded(reply, guard.allowed)
        if dropped:
            out["dropped_sentences"] = dropped
            said = ", ".join(f"{v:g}" for v in sorted(made_up))
            out["warnings"].append(f"dropped {len(dropped)} sentence(s) of the model's reply stating numbers that "
                                   f"were not in the caller's words, the conversation or the facts ({said})")
        return reply

    def _store_call(self, method: str, *args: Any, out: dict[str, Any], **kwargs: Any) -> Any:
        """Call the store; when the database is down keep the call in the outbox and warn instead of failing."""
        if self.outbox:  # keep the order of writes: once one is queued, queue the rest behind it
            return self._queue(method, args, kwargs, out, None)
        try:
            result = getattr(self._store, method)(*args, **kwargs)
            out.setdefault("saved", True)
            return result
        except TicketStoreError as exc:
            return self._queue(method, args, kwargs, out, exc)

    def _queue(self, method: str, args: tuple, kwargs: dict[str, Any], out: dict[str, Any],
               exc: Exception | None) -> Any:
        ref = f"pending-{uuid.uuid4().hex[:8]}"
        self.outbox.append({"method": method, "args": list(args), "kwargs": kwargs, "ref": ref})
        out["saved"] = False
        if exc is not None:
            out["warnings"].append(f"{exc} ({len(self.outbox)} write(s) waiting)")
        return ref

    def flush_outbox(self) -> int:
        """Write the queued turns once the database is back. Returns how many writes were done."""
        done, refs = 0, {}
        while self.outbox:
            item = self.outbox[0]
            args = [refs.get(a, a) if isinstance(a, str) else a for a in item["args"]]
            try:
                result = getattr(self._store, item["method"])(*args, **item["kwargs"])
            except TicketStoreError:
                for rest in self.outbox:  # keep resolved ids for the writes still waiting
                    rest["args"] = [refs.get(a, a) if isinstance(a, str) else a for a in rest["args"]]
                return done
            refs[item["ref"]] = result
            self.outbox.pop(0)
            done += 1
        return done

    def postprocess(self, outputs: dict[str, Any]) -> ServiceTurnResult:
        senti, intent, timings = outputs["sentiment"], outputs["intent"], outputs["timings"]
        ttfa = timings.pop("time_to_first_audio", -1.0)
        audio = outputs.get("audio")
        res = ServiceTurnResult(
            vertical=self.name, session_id=outputs["session"].id, turn_index=outputs["turn_index"],
            channel=outputs["channel"], language=outputs["language"], transcript=outputs["transcript"],
            words=outputs["words"], speech_regions_s=outputs["regions"], sentiment=senti.label,
            sentiment_score=senti.score, text_sentiment_score=senti.text_score,
            voice_features=outputs["voice"].to_dict() if outputs["voice"] else None, intent=intent.label,
            intent_confidence=intent.confidence, escalated=outputs["escalated"],
            escalation_reason=outputs["reason"], model_intent=outputs.get("model_intent"),
            reply=outputs["reply"], faq_ids=outputs.get("faq_ids", []),
            faq_appended=bool(outputs.get("faq_appended")),
            dropped_sentences=outputs.get("dropped_sentences", []),
            reply_sentences=outputs.get("sentences", []),
            reply_audio_s=len(audio) / 16000 if audio is not None else 0.0,
            time_to_first_audio_s=ttfa if ttfa >= 0 else None,
            ticket_turn_id=outputs["turn_id"] if isinstance(outputs["turn_id"], int) else None,
            llm_prompt_tokens=outputs.get("llm_tokens", (0, 0))[0],
            llm_completion_tokens=outputs.get("llm_tokens", (0, 0))[1],
            llm_reusable_tokens=outputs.get("reusable_tokens", 0),
            llm_cached_tokens=outputs.get("cached_tokens", 0),
            interrupted=bool(outputs.get("interrupted")),
            ticket_saved=bool(outputs.get("saved")), outbox_pending=len(self.outbox),
            warnings=outputs["warnings"], timings_s=timings)
        res._audio = audio
        return res

    def build_messages(self, text: str, lang: str, hits: list, history: list[dict[str, str]]) -> list[dict[str, str]]:
        """The LM messages of one turn (:func:`puyu_apps.service.prompting.build_messages`; the training data
        generator calls the same function)."""
        return build_messages(self._system_template, self._user_template, text, lang, hits, history)

    @classmethod
    def make_training_data(cls, out_dir: str | Path, n_train: int = 3000, n_eval: int = 200,
                           seed: int = 0) -> tuple[Path, Path]:
        """Generated English + Chinese caller turns -> ``intent: X`` + grounded reply, in the pipeline's exact
        prompt format; the held-out split comes from a disjoint seed stream (see ``training_data.py``)."""
        from .training_data import write_splits

        return write_splits(out_dir, n_train=n_train, n_eval=n_eval, seed=seed)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        self._asr = self._tts = self._store = None
        super().close()

    @classmethod
    def add_cli_commands(cls, subparsers: Any) -> None:
        from .cli import add_commands

        add_commands(subparsers)
