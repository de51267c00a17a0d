import numpy as np
import pytest

from puyu_apps.errors import InvalidInputError
from puyu_apps.paths import vertical_dir
from puyu_apps.service.asr import word_error_rate
from puyu_apps.service.audio import SAMPLE_RATE
from puyu_apps.service.intent import EscalationPolicy, classify_intent
from puyu_apps.service.knowledge import FAQEntry, KnowledgeBase
from puyu_apps.service.sentiment import combine, text_sentiment, voice_features
from puyu_apps.service.tts import EspeakTTS, FliteTTS, SentenceSpeaker, split_sentences


@pytest.mark.parametrize("text,label", [
    ("Thank you, that was very helpful!", "positive"),
    ("What are your opening hours?", "neutral"),
    ("My package is late and the box was damaged.", "negative"),
    ("This is unacceptable! The worst service ever, I am furious!", "angry"),
    ("谢谢，问题解决了，很满意。", "positive"),
    ("太差了！又没到，我要投诉，气死了！", "angry"),
    ("I am not happy with this.", "negative"),
])
def test_text_sentiment_labels(text, label):
    assert combine(text).label == label


def harmonic(f0, seconds, amp, rate=SAMPLE_RATE):
    t = np.arange(int(seconds * rate)) / rate
    return (amp * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))).astype(np.float32)


def test_voice_features_pitch_loudness_and_arousal():
    calm = voice_features(harmonic(110, 2, 0.05), n_words=5)
    shout = voice_features(harmonic(260, 2, 0.6), n_words=10)
    assert abs(calm.pitch_hz - 110) < 8 and abs(shout.pitch_hz - 260) < 15
    assert shout.loudness_db > calm.loudness_db + 15
    assert shout.arousal > calm.arousal + 0.3
    # the same mildly negative words become "angry" only in the agitated voice
    text = "My order is late and nobody answers my emails, this is a problem."
    assert combine(text, calm).label == "negative"
    assert combine(text, shout).label == "angry"
    assert text_sentiment(text)[0] < 0


@pytest.mark.parametrize("text,intent", [
    ("Hello, my order arrived damaged and I would like a refund please.", "refund"),
    ("Where is my package? It has not arrived.", "order_status"),
    ("I cannot log in, how do I reset my password?", "technical"),
    ("Why was I charged twice on my bill?", "billing"),
    ("Let me speak to a manager.", "human_agent"),
    ("我要退款", "refund"), ("我的快递到哪里了", "order_status"), ("转人工", "human_agent"),
    ("What a lovely day.", "other"),
])
def test_intent_rules(text, intent):
    assert classify_intent(text).label == intent


def test_escalation_policy():
    p = EscalationPolicy(max_complaints=2)
    assert p.decide("angry", "refund", 1)[0]
    assert p.decide("neutral", "human_agent", 0)[0]
    assert not p.decide("negative", "refund", 1)[0]
    assert p.decide("negative", "refund", 2) == (True, "repeated complaint (2 in this session)")
    with pytest.raises(ValueError, match="max_complaints"):
        EscalationPolicy(0)


def test_faq_retrieval_en_zh_and_bad_file(tmp_path):
    kb = KnowledgeBase.load(vertical_dir("service") / "faq.json")
    assert kb.search("my parcel has not arrived, where is the delivery")[0][0].id == "delivery"
    assert kb.search("how do I reset my password")[0][0].id == "password"
    assert kb.search("我想退款")[0][0].id == "refund"
    assert kb.search("zzz qqq") == []
    bad = tmp_path / "faq.json"
    bad.write_text('{"entries": [{"question": "q"}]}')
    with pytest.raises(InvalidInputError, match="entries\\[0\\]"):
        KnowledgeBase.load(bad)
    with pytest.raises(InvalidInputError, match="no entries"):
        KnowledgeBase([FAQEntry("a", "q", "a")][:0])


def test_wer():
    assert word_error_rate("Hello there friend", "hello, there friend!") == 0
    assert word_error_rate("a b c d", "a x c") == 0.5


def test_sentence_splitting():
    assert split_sentences("Hi there. How are you? Fine!") == ["Hi there.", "How are you?", "Fine!"]
    assert split_sentences("你好。我想退款！") == ["你好。", "我想退款！"]


def test_sentence_speaker_speaks_before_the_text_ends():
    heard = []
    speaker = SentenceSpeaker(EspeakTTS(), "en", on_chunk=heard.append)
    pieces = ["Your refund ", "is on its way. ", "It takes five ", "business days. ", "Thank you"]
    ready_after = []
    for i, p in enumerate(pieces):
        if speaker.feed(p):
            ready_after.append(i)
    speaker.flush()
    assert ready_after[0] == 1  # first audio after the second piece, before the answer is complete
    assert [c.text for c in heard] == ["Your refund is on its way.", "It takes five business days.", "Thank you"]
    assert all(c.duration_s > 0.5 for c in heard)
    assert len(speaker.audio) > sum(len(c.samples) for c in heard)  # joined with short pauses


def test_tts_engines_write_speech(tmp_path):
    en = FliteTTS().synthesize("Good morning, how can I help?")
    zh = EspeakTTS().synthesize("你好，我可以帮您什么？", "zh")
    assert len(en) / SAMPLE_RATE > 0.8 and len(zh) / SAMPLE_RATE > 0.8
    assert np.abs(en).max() > 0.05 and np.abs(zh).max() > 0.05
    path = EspeakTTS().save("Hello", tmp_path / "h.wav")
    assert path.stat().st_size > 1000


def test_complete_sentences_and_discard():
    from puyu_apps.service.pipeline import complete_sentences, detect_language

    assert complete_sentences("We are sorry. We will refund you. Please wait for") == "We are sorry. We will refund you."
    assert complete_sentences("no end here") == "no end here"
    assert detect_language("我要退款 please") == "zh" and detect_language("refund please") == "en"
    speaker = SentenceSpeaker(EspeakTTS())
    speaker.feed("A whole sentence here. And half of")
    assert speaker.discard() == "And half of" and speaker.flush() == []


def test_word_error_rate_reads_numbers_as_words():
    from puyu_apps._numbers import number_words
    from puyu_apps.service.asr import word_error_rate

    assert number_words(123) == ["one", "hundred", "twenty", "three"]
    assert number_words(2_500_040) == ["two", "million", "five", "hundred", "thousand", "forty"]
    # what speech synthesis says for a digit string, and Whisper writes either way
    assert word_error_rate("Order 123 has shipped.", "order one hundred twenty-three has shipped") == 0.0
    assert word_error_rate("one hundred and five", "105") == 0.0
    assert word_error_rate("Order 123 has shipped.", "order 124 has shipped") == 1 / 7  # one word of seven
    assert word_error_rate("退款需要三天", "退款需要三天") == 0.0 and word_error_rate("", "x") == 1.0
