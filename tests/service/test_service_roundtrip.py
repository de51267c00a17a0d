"""End to end on the real models: espeak-ng call -> Whisper tiny.en -> SmolLM2 (embedded default) -> espeak-ng
reply -> Whisper again on the reply audio."""

import pytest

from puyu_apps.service import CustomerServicePipeline
from puyu_apps.service.asr import make_asr, word_error_rate
from puyu_apps.service.audio import load_audio

from .conftest import CALL_TEXT, espeak


@pytest.mark.integration
def test_round_trip_on_a_generated_call(tmp_path):
    call = espeak(CALL_TEXT, tmp_path / "call.wav")
    heard = []
    pipe = CustomerServicePipeline(db_url=f"sqlite:///{tmp_path / 'tickets.db'}", max_new_tokens=60)
    pipe.on_audio = heard.append
    with pipe:
        res = pipe(str(call), customer="round-trip")
        wer = word_error_rate(CALL_TEXT, res.transcript)
        assert wer <= 0.25, (wer, res.transcript)
        assert res.intent == "refund" and res.faq_ids[0] == "refund"
        assert res.sentiment in ("negative", "neutral") and not res.escalated
        assert res.engine["model"] == "smollm2-135m-instruct"
        assert len(res.reply.split()) >= 5 and "refund" in res.reply.lower()  # grounded in the FAQ entry
        # the reply was spoken sentence by sentence; the first sentence was ready before the answer ended
        assert heard and res.time_to_first_audio_s is not None
        assert len(heard) >= 2 and heard[0].ready_s < heard[-1].ready_s
        assert res.time_to_first_audio_s <= heard[0].ready_s + 0.05
        out = res.save(tmp_path / "reply.wav")
        back = make_asr().transcribe([load_audio(out).samples]).text
        reply_wer = word_error_rate(res.reply, back)
        print(f"\ncall WER {wer:.2f} | transcript: {res.transcript}\nreply: {res.reply}\nheard back "
              f"(WER {reply_wer:.2f}): {back}\ntimings: {res.timings_s}")
        assert reply_wer <= 0.35, (reply_wer, res.reply, back)
        row = pipe.store.turns_of(res.session_id)[0]
        assert row["status"] == "answered" and row["reply"] == res.reply
        # a second caller voice (flite) in the same session: transcript, intent, and the session memory
        from puyu_apps.service.tts import FliteTTS

        text = "I cannot log in to the app. How do I reset my password?"
        call2 = FliteTTS().save(text, tmp_path / "call2.wav")
        res2 = pipe(str(call2), session_id=res.session_id)
        print(f"flite call WER {word_error_rate(text, res2.transcript):.2f}: {res2.transcript}\nreply: {res2.reply}")
        assert word_error_rate(text, res2.transcript) <= 0.25 and res2.intent == "technical"
        assert res2.turn_index == 2 and res2.faq_ids[0] == "password" and "password" in res2.reply.lower()
        assert len(pipe.sessions[res.session_id].history) == 4 and res2.llm_reusable_tokens > 0
