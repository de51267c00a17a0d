"""The service's number check: a reply's sentences that state a number its prompt did not contain are dropped,
never spoken; numbers from the caller, the history and the facts stay."""

from __future__ import annotations

import pytest

from puyu_apps.core.model import TokenStream
from puyu_apps.service.grounding import NumberGuard, keep_grounded, numbers_in


@pytest.mark.parametrize("text,values", [
    ("I see the charge of two.", {2}),
    ("Refunds take 5 business days.", {5}),
    ("Agents work 9:00 to 18:30; 2,000 yuan or 3.5 %.", {9, 18, 30, 2000, 3.5}),
    ("Twenty-five dollars and three hundred and ten cents.", {25, 310}),
    ("Items 1,2 and 3.", {1, 2, 3}),
    ("Order 123-456 shipped on 12/05.", {123, 456, 12, 5}),
    ("One moment please, someone will call you.", set()),  # "one" as "a": no number
    ("退款需要五个工作日。", {5}),
    ("我们三十天内退货，两个人处理。", {30, 2}),
    ("十分感谢，请稍等一下，万一有问题请联系我们。", set()),  # 十分 "very", 一下 "a moment", 万一 "in case"
    ("链接30分钟内有效。", {30}),
])
def test_numbers_a_text_states(text, values):
    assert numbers_in(text) == {float(v) for v in values}


def test_sentences_with_made_up_numbers_are_dropped_and_the_rest_kept_as_written():
    allowed = numbers_in("Refunds are issued within 5 business days. My order 4417 arrived damaged.")
    reply = "Sorry about order 4417. I see the charge of two hundred dollars. Refunds take five business days."
    text, dropped, made_up = keep_grounded(reply, allowed)
    assert text == "Sorry about order 4417. Refunds take five business days."
    assert dropped == ["I see the charge of two hundred dollars."] and made_up == {200.0}
    same = "Sorry about that.\nRefunds take 5 business days."
    assert keep_grounded(same, allowed) == (same, [], set())  # nothing dropped: the text as it was
    zh = "退款需要5个工作日。我看到扣款两次。"
    assert keep_grounded(zh, numbers_in("退款在收到退货后5个工作日内退回原支付方式。")) == (
        "退款需要5个工作日。", ["我看到扣款两次。"], {2.0})


@pytest.mark.parametrize("reply,sources", [
    ("Sorry about order 4417. I see the charge of two hundred dollars. Refunds take five business days.",
     "Refunds are issued within 5 business days. My order 4417 arrived damaged."),
    ("退款需要5个工作日。我看到扣款两次。请耐心等待。", "退款在收到退货后5个工作日内退回原支付方式。"),
])
@pytest.mark.parametrize("step", [1, 3, 7])
def test_the_streaming_guard_says_what_keep_grounded_writes(reply, sources, step):
    """Pieces of any size: the sentences that come out (to speech) are those keep_grounded keeps, each once and
    complete; the unfinished sentence waits for finish()."""
    guard = NumberGuard.for_sources(sources)
    out = "".join(guard.feed(reply[i:i + step]) for i in range(0, len(reply), step))
    out += guard.finish()
    text, dropped, _ = keep_grounded(reply, guard.allowed)
    assert out.replace(" ", "") == text.replace(" ", "") and guard.dropped == dropped and dropped
    cut = NumberGuard.for_sources(sources)
    said = cut.feed("Refunds take five business days. The fee is")
    cut.discard()  # a reply cut by the token limit: its unfinished sentence is never spoken
    assert said == "Refunds take five business days. " and cut.finish() == ""


def test_a_turn_drops_and_does_not_speak_a_made_up_number(service, monkeypatch):
    """The pipeline with the model's reply fixed: the sentence with a number found neither in the caller's words nor
    in the facts is out of the reply, the speech and the ticket; the caller's order number and the facts' 5 stay."""
    service.warm_up()
    reply = ("intent: refund\nSorry that order 4417 arrived damaged. I see the charge of two hundred dollars. "
             "Damaged items are refunded within 5 business days.")

    def fixed(messages, cfg=None, **kw):
        return TokenStream(iter([reply[i:i + 5] for i in range(0, len(reply), 5)]))

    monkeypatch.setattr(service.lm, "stream", fixed)
    res = service("My order 4417 arrived damaged, I want a refund.")
    assert res.reply == "Sorry that order 4417 arrived damaged. Damaged items are refunded within 5 business days."
    assert res.dropped_sentences == ["I see the charge of two hundred dollars."]
    assert any("200" in w and "not in the caller's words" in w for w in res.warnings)
    spoken = " ".join(res.reply_sentences)
    assert "4417" in spoken and "5 business days" in spoken and "two hundred" not in spoken
    assert service.store.turns_of(res.session_id)[0]["reply"] == res.reply
    reply = "intent: refund\nI see the charge of two hundred dollars."  # nothing left: the best FAQ answer
    only = service("My order 4417 arrived damaged, I want a refund.")
    assert only.reply == service._kb.search("My order 4417 arrived damaged, I want a refund.")[0][0].answer
    assert only.dropped_sentences == ["I see the charge of two hundred dollars."]
    service.check_numbers = False
    reply = "intent: refund\nI see the charge of two hundred dollars. Refunds take 5 business days."
    assert "two hundred dollars" in service("My order 4417 arrived damaged, I want a refund.").reply
