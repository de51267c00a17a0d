"""An async, frame-style voice loop with barge-in (after pipecat's frame processors, much smaller).

Three tasks pass typed frames through queues:

* **listen**: caller audio frames -> streaming energy VAD -> ``UtteranceFrame`` when the caller stops talking;
  caller speech while the bot is talking raises an ``InterruptFrame`` (a system frame: handled at once).
* **think**: each utterance runs the :class:`CustomerServicePipeline` in a worker thread; every sentence it speaks
  becomes a ``SpeechFrame`` as soon as it is synthesised.
* **speak**: plays ``SpeechFrame``s in real time (``playback_speed`` > 1 plays faster, for tests) through an
  optional ``sink`` and records what the caller actually heard.

On an interruption the queued speech frames are flushed, generation is cancelled, and the session history keeps
only the sentences the caller heard. Errors of one turn travel as ``ErrorFrame``s; the loop goes on.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, AsyncIterable, Callable

import numpy as np

from .audio import SAMPLE_RATE
from .errors import AudioError


@dataclass
class UtteranceFrame:
    samples: np.ndarray
    start_s: float


@dataclass
class SpeechFrame:
    turn: int
    text: str
    samples: np.ndarray


@dataclass
class InterruptFrame:
    at_s: float


@dataclass
class ErrorFrame:
    turn: int
    error: str


@dataclass
class EndFrame:
    pass


@dataclass
class VoiceTurn:
    index: int
    transcript: str = ""
    reply: str = ""
    heard: list[str] = field(default_factory=list)
    interrupted: bool = False
    error: str = ""
    result: Any = None


class VoiceLoop:
    def __init__(self, pipeline: Any, *, session_id: str | None = None, frame_ms: int = 20,
                 speech_db: float = -40.0, end_silence_ms: int = 500, barge_in_ms: int = 100,
                 playback_speed: float = 1.0, sink: Callable[[np.ndarray], None] | None = None) -> None:
        if playback_speed <= 0:
            raise ValueError(f"playback_speed must be > 0, got {playback_speed}")
        self.pipe, self.session_id = pipeline, pipeline.session(session_id).id
        self.frame_ms, self.speech_db = frame_ms, speech_db
        self.end_frames, self.barge_frames = end_silence_ms // frame_ms, max(1, barge_in_ms // frame_ms)
        self.speed, self.sink = playback_speed, sink
        self.turns: list[VoiceTurn] = []
        self.events: list[Any] = []
        self.speaking = False      # the bot is playing audio now
        self.played_s = 0.0        # audio played in the current turn

    # -- listen -------------------------------------------------------------------------------------------
    async def _listen(self, frames: AsyncIterable[np.ndarray], utter_q: asyncio.Queue) -> None:
        buf: list[np.ndarray] = []
        loud = quiet = 0
        t = 0.0
        async for frame in frames:
            t += len(frame) / SAMPLE_RATE
            db = 20 * np.log10(np.sqrt(np.mean(np.square(frame))) + 1e-10)
            if db > self.speech_db:
                loud, quiet = loud + 1, 0
                if loud == self.barge_frames and self.busy:
                    self._interrupt(InterruptFrame(t))
            else:
                quiet += 1
                if quiet >= self.end_frames:
                    loud = 0
            if loud or buf:
                buf.append(frame)
            if buf and quiet >= self.end_frames:
                samples = np.concatenate(buf)
                buf = []
                if len(samples) > (self.end_frames + self.barge_frames) * self.frame_ms * SAMPLE_RATE // 1000:
                    await utter_q.put(UtteranceFrame(samples, t - len(samples) / SAMPLE_RATE))
        if buf:
            await utter_q.put(UtteranceFrame(np.concatenate(buf), t))
        await utter_q.put(EndFrame())

    @property
    def busy(self) -> bool:
        """The bot holds the floor: a turn is being answered or its speech is queued or playing."""
        if not self.turns or self.turns[-1].interrupted or self.turns[-1].error:
            return False
        return self.turns[-1].result is None or self.speaking or not self._speech_q.empty()

    def _interrupt(self, frame: InterruptFrame) -> None:
        """System frame: stop generation, flush queued speech, keep only what was heard."""
        self.events.append(frame)
        self.pipe.cancel.set()
        self.speaking = False
        if self.turns:
            turn = self.turns[-1]
            turn.interrupted = True
            self._keep_heard(turn)
        while not self._speech_q.empty():
            self._speech_q.get_nowait()

    def _keep_heard(self, turn: VoiceTurn) -> None:
        if turn.result is None or not turn.interrupted:
            return
        hist = self.pipe.sessions[self.session_id].history
        if hist and hist[-1]["role"] == "assistant":
            hist[-1]["content"] = " ".join(turn.heard) or "(interrupted before speaking)"

    # -- think --------------------------------------------------------------------------------------------
    async def _think(self, utter_q: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        while True:
            frame = await utter_q.get()
            if isinstance(frame, EndFrame):
                await self._speech_q.put(frame)
                return
            turn = VoiceTurn(len(self.turns) + 1)
            self.turns.append(turn)
            self.played_s = 0.0
            self.pipe.on_audio = lambda c, n=turn.index: loop.call_soon_threadsafe(
                self._speech_q.put_nowait, SpeechFrame(n, c.text, c.samples))
            try:
                res = await asyncio.to_thread(self.pipe, frame.samples, rate=SAMPLE_RATE,
                                              session_id=self.session_id)
            except AudioError as exc:  # noise or an unintelligible utterance: report it, keep listening
                turn.error = f"{type(exc).__name__}: {exc}"
                self.events.append(ErrorFrame(turn.index, turn.error))
                continue
            turn.result, turn.transcript, turn.reply = res, res.transcript, res.reply
            turn.interrupted |= res.interrupted
            self._keep_heard(turn)

    # -- speak --------------------------------------------------------------------------------------------
    async def _speak(self) -> None:
        while True:
            frame = await self._speech_q.get()
            if isinstance(frame, EndFrame):
                return
            turn = self.turns[frame.turn - 1]
            if turn.interrupted:
                continue  # flushed: the caller cut this turn off
            self.speaking = True
            step = int(0.05 * SAMPLE_RATE)
            for i in range(0, len(frame.samples), step):  # play in 50 ms slices so a barge-in cuts in quickly
                if turn.interrupted:
                    break
                piece = frame.samples[i:i + step]
                if self.sink is not None:
                    self.sink(piece)
                await asyncio.sleep(len(piece) / SAMPLE_RATE / self.speed)
                self.played_s += len(piece) / SAMPLE_RATE
            else:
                turn.heard.append(frame.text)  # a sentence counts as heard once played to the end
            self.speaking = False

    async def run(self, frames: AsyncIterable[np.ndarray]) -> list[VoiceTurn]:
        """Run until the caller's frames end and every reply has been played (or cut off)."""
        utter_q: asyncio.Queue = asyncio.Queue()
        self._speech_q: asyncio.Queue = asyncio.Queue()
        await asyncio.gather(self._listen(frames, utter_q), self._think(utter_q), self._speak())
        self.pipe.on_audio = None
        return self.turns
