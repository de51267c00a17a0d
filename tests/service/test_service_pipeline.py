import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import puyu_apps
from puyu_apps.errors import InvalidInputError
from puyu_apps.cli import main
from puyu_apps.service import (CustomerServicePipeline, NotAudioError, ServiceTurnResult, SilentAudioError,
                               TicketStoreError)
from puyu_apps.service.tickets import TicketStore

from .conftest import CALL_TEXT


def test_import_is_cheap_and_entry_point():
    code = ("import sys, puyu_apps.service as s; "
            "print([m for m in ('faster_whisper', 'soundfile', 'sqlalchemy', 'ctranslate2') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    pipe = puyu_apps.pipeline("service", model="tiny-random-llama")
    assert isinstance(pipe, CustomerServicePipeline)
    assert CustomerServicePipeline.from_dict(pipe.to_dict()).init_parameters() == pipe.init_parameters()
    with pytest.raises(ValueError, match="max_new_tokens"):
        CustomerServicePipeline(max_new_tokens=0)


def test_text_ticket_turn_is_stored(service):
    res = service("My parcel has not arrived yet, where is the delivery?", customer="demo-001")
    assert isinstance(res, ServiceTurnResult)
    assert res.channel == "text" and res.language == "en" and res.intent == "order_status"
    assert res.faq_ids[0] == "delivery" and res.reply and res.ticket_saved
    assert res.reply_audio_s > 0.5 and res.time_to_first_audio_s is not None
    rows = service.store.turns_of(res.session_id)
    assert len(rows) == 1 and rows[0]["status"] == "answered"
    assert rows[0]["transcript"] == res.transcript and rows[0]["reply"] == res.reply
    assert rows[0]["intent"] == "order_status" and rows[0]["sentiment"] == res.sentiment
    assert service.store.ticket(res.session_id)["customer"] == "demo-001"


def test_voice_turn_transcribes_with_word_times(service, call_wav, tmp_path):
    res = service(str(call_wav))
    assert res.channel == "voice" and res.intent == "refund"
    assert "refund" in res.transcript.lower()
    assert len(res.words) >= 8 and all(w["end"] >= w["start"] for w in res.words)
    assert res.words[-1]["end"] <= sf.info(call_wav).duration + 0.5
    assert res.voice_features and res.voice_features["pitch_hz"] > 50
    assert 0 < res.timings_s["asr_rtf"] < 2
    out = res.save(tmp_path / "reply.wav")
    assert sf.info(out).samplerate == 16000 and sf.info(out).duration > 0.5
    stored = json.loads(service.store.turns_of(res.session_id)[0]["words_json"])
    assert [w["text"] for w in stored] == [w["text"] for w in res.words]


def test_session_memory_and_repeated_complaints_escalate(service):
    sid = service.session().id
    r1 = service("My order is late.", session_id=sid)
    assert not r1.escalated and r1.turn_index == 1
    r2 = service("It is still late and the box is damaged.", session_id=sid)
    assert r2.escalated and "repeated complaint" in r2.escalation_reason
    assert r2.reply.endswith("I am transferring you to a human agent now.")
    assert len(service.sessions[sid].history) == 4
    assert service.store.ticket(sid)["status"] == "escalated"
    angry = service("This is unacceptable! Worst service ever, I am furious!")
    assert angry.sentiment == "angry" and angry.escalated and angry.session_id != sid


def test_llm_failure_keeps_the_transcript(service, monkeypatch):
    service.warm_up()

    def boom(*a, **k):
        raise RuntimeError("decoder crashed")

    monkeypatch.setattr(service.lm, "stream", boom)
    with pytest.raises(RuntimeError):
        service("Please refund my damaged order.", session_id="s-fail")
    rows = service.store.turns_of("s-fail")
    assert rows[0]["transcript"] == "Please refund my damaged order."
    assert rows[0]["status"] == "failed" and "decoder crashed" in rows[0]["error"]
    monkeypatch.undo()
    assert service("Thanks anyway.", session_id="s-other").reply  # the pipeline keeps serving


def test_database_down_keeps_answering_and_flushes_later(tmp_path):
    later = tmp_path / "not-yet"
    pipe = CustomerServicePipeline(model="tiny-random-llama", db_url=f"sqlite:///{later / 'tickets.db'}",
                                   tts=None, max_new_tokens=8)
    res = pipe("Where is my package?", session_id="s1")
    assert res.reply and not res.ticket_saved and res.outbox_pending == 2
    assert any("TicketStoreError" not in w and "ticket database" in w for w in res.warnings)
    res2 = pipe("And my refund?", session_id="s1")
    assert res2.outbox_pending == 4
    later.mkdir()  # the database comes back
    assert pipe.flush_outbox() == 4 and not pipe.outbox
    rows = pipe.store.turns_of("s1")
    assert [r["transcript"] for r in rows] == ["Where is my package?", "And my refund?"]
    assert all(r["status"] == "answered" for r in rows)
    with pytest.raises(TicketStoreError, match="not-a-dir"):
        TicketStore(f"sqlite:///{tmp_path / 'not-a-dir' / 'x.db'}").turns_of("s1")
    with pytest.raises(ValueError, match="no reply audio|tts=None"):
        res.save(tmp_path / "r.wav")
    pipe.close()


def test_bad_inputs_are_typed_and_service_goes_on(service, tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio" * 100)
    with pytest.raises(NotAudioError, match="junk.wav"):
        service(str(junk))
    silent = tmp_path / "silence.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    with pytest.raises(SilentAudioError):
        service(str(silent))
    with pytest.raises(ValueError, match="empty"):
        service("   ")
    with pytest.raises(InvalidInputError, match="service input"):
        service(3.5)
    with pytest.raises(InvalidInputError, match="one call at a time"):
        service([str(silent), str(junk)])
    assert service(["where", "is", "my", "order?"]).intent == "order_status"
    assert service("Hello, what are your opening hours?").reply


def test_cli_run_make_sample_and_talk(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PUYU_APPS_CACHE", str(tmp_path / "cache"))
    assert main(["service", "make-sample", "--out", str(tmp_path / "s"), "--engine", "flite"]) == 0
    made = json.loads((tmp_path / "s" / "samples.json").read_text())
    assert "password.wav" in capsys.readouterr().out
    assert {m["id"] for m in made} == {"refund", "order_status", "angry", "password"}  # flite: English only
    wav = tmp_path / "s" / "password.wav"
    assert main(["run", "service", str(wav), "--model", "tiny-random-llama", "--out", str(tmp_path / "r.wav"),
                 "--json", "--params", '{"customer": "cli"}']) == 0
    out = capsys.readouterr().out
    data = json.loads(out[out.index("{"):])
    assert data["intent"] == "technical" and data["channel"] == "voice"
    assert sf.info(tmp_path / "r.wav").duration > 0.5
    assert main(["service", "talk", "--model", "tiny-random-llama", "--tts", "none", "--session", "cli-s",
                 "Where is my order?", str(tmp_path / "missing.flac"), "Thanks!"]) == 0
    out = capsys.readouterr()
    assert out.out.count("[cli-s #") == 2 and "NotAudioError" in out.err


def test_chinese_text_ticket(service):
    res = service("你好，我的订单坏了，我想退款。")
    assert res.language == "zh" and res.intent == "refund" and res.faq_ids[0] == "refund"
    assert "退款" in res.reply  # the Chinese FAQ answer (the tiny model's own text is garbage)
    assert res.reply_audio_s > 1.0  # spoken with espeak-ng's cmn-latn-pinyin voice


def test_append_grounding_adds_a_strongly_matched_answer_the_adapter_did_not_state():
    from puyu_apps.paths import vertical_dir
    from puyu_apps.service.knowledge import KnowledgeBase
    from puyu_apps.service.pipeline import missing_answer

    kb = KnowledgeBase.load(vertical_dir("service") / "faq.json")
    refund = kb.search("Hello, my order arrived damaged and I would like a refund please.", k=2)
    assert refund[0][0].id == "refund"
    handover = "I am sorry about that. A colleague will follow up on this shortly."
    # the adapter handed over on a request the refund entry answers: the answer is added
    assert missing_answer(handover, refund, "en", adapter=True) == refund[0][0].answer
    # it stated one sentence of the entry (not all): its words stand
    stated = "I am sorry about that. Damaged items are refunded without a return."
    assert missing_answer(stated, refund, "en", adapter=True) is None
    # a free-form reply is held to more of the answer, and to a weaker match
    assert missing_answer(stated, refund, "en", adapter=False) == refund[0][0].answer
    # a weak match (the facts do not cover a crash): the adapter's hand-over stands, no fact is made up
    crash = kb.search("the app keeps crashing when I open it", k=2)
    assert 0 < crash[0][1] < 0.4 and missing_answer(handover, crash, "en", adapter=True) is None
    assert missing_answer(handover, [], "en", adapter=True) is None
    zh = kb.search("忘记密码了", k=2)
    assert zh[0][0].id == "password" and missing_answer("我们的同事会尽快跟进。", zh, "zh", adapter=True) == \
        zh[0][0].answer_for("zh")
