"""The async voice loop: a caller who barges in while the bot is talking (real espeak audio, real Whisper)."""

import asyncio

import numpy as np

from puyu_apps.service import CustomerServicePipeline
from puyu_apps.service.audio import SAMPLE_RATE, load_audio
from puyu_apps.service.voice_loop import InterruptFrame, VoiceLoop

from .conftest import espeak

FRAME = 320  # 20 ms


def frames_of(x):
    return [x[i:i + FRAME] for i in range(0, len(x) - FRAME + 1, FRAME)]


def test_barge_in_cuts_the_reply_and_history_keeps_what_was_heard(tmp_path):
    q1 = load_audio(espeak("Where is my package? It has not arrived.", tmp_path / "q1.wav")).samples
    q2 = load_audio(espeak("Stop please. I want my money back.", tmp_path / "q2.wav")).samples
    silence = np.zeros(FRAME, np.float32)
    pipe = CustomerServicePipeline(model="tiny-random-llama", db_url=f"sqlite:///{tmp_path / 't.db'}",
                                   max_new_tokens=16)
    loop = VoiceLoop(pipe, playback_speed=4.0)

    async def caller():
        for f in frames_of(q1):
            yield f
            await asyncio.sleep(0.005)
        for _ in range(30):  # 600 ms of silence ends the utterance
            yield silence
            await asyncio.sleep(0.005)
        while not (loop.speaking and loop.played_s > 1.0):  # wait until the bot has talked a while
            yield silence
            await asyncio.sleep(0.02)
        for f in frames_of(q2):  # ... then talk over it
            yield f
            await asyncio.sleep(0.005)
        for _ in range(30):
            yield silence
            await asyncio.sleep(0.005)
        while loop.busy:
            yield silence
            await asyncio.sleep(0.02)

    turns = asyncio.run(asyncio.wait_for(loop.run(caller()), 120))
    assert len(turns) == 2 and any(isinstance(e, InterruptFrame) for e in loop.events)
    first, second = turns
    assert first.interrupted and first.reply
    sentences = first.result.reply_sentences
    assert len(first.heard) < len(sentences) and first.heard == sentences[:len(first.heard)]
    history = pipe.sessions[loop.session_id].history
    assert history[1] == {"role": "assistant", "content": " ".join(first.heard) or "(interrupted before speaking)"}
    assert "money back" in second.transcript.lower() and second.result.intent == "refund"
    assert not second.interrupted and second.heard == second.result.reply_sentences
    assert [r["turn_index"] for r in pipe.store.turns_of(loop.session_id)] == [1, 2]
    pipe.close()
