"""Training data and task scorer of the service LoRA adapter (``puyu finetune --vertical service``).

Every row is one caller turn composed from structured cases: an intent, a phrasing of the request (English or
Chinese), slots (item, order number, amount, time), a tone (polite / neutral / negative / angry), a channel
(typed text, sometimes with a typo, or ASR-style lowercase without punctuation) and sometimes earlier turns of the
same call. The prompt is built by :func:`puyu_apps.service.prompting.build_messages` from what the pipeline's own
retrieval finds for that utterance, so ``system`` + ``instruction`` are exactly what the pipeline sends. The
``output`` is the adapter's format: ``intent: LABEL`` and a reply of one or two short sentences in the caller's
language, formulaic on purpose (a 135M model learns it): an opener (apology for an unhappy caller, the order
number or amount when given, else a short acknowledgement) and the FAQ sentence that answers the question,
copied from the facts in the prompt. When the facts do not cover the request, the reply says a colleague will
follow up; out-of-scope requests get a one-line scope reply. The hand-off sentence is not part of the output: the
pipeline appends it when its escalation policy fires. ``meta`` holds the truth: intent, the fact used and its key
value, whether the turn should be escalated, tone, channel, the rule classifier's intent (a baseline).

The held-out split is drawn from a separate seed stream and never shares a (normalised) utterance with train.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .intent import EscalationPolicy, classify_intent, is_complaint
from .prompting import INTENT_LABELS, ServicePrompts, build_messages, detect_language, format_output, split_intent

# -- the cases -------------------------------------------------------------------------------------------------
# (phrasing, answer) per language and intent. answer: (FAQ id, sentence index) -> that FAQ sentence is the fact;
# None -> the facts do not cover it (a colleague follows up); "hello" / "thanks" / "scope" -> fixed replies.
# Slots: {item} {ord} (", order number 48213" or "") {n} (an order number) {amount} {when} {late}.
Answer = Any

CASES: dict[str, dict[str, list[tuple[str, Answer]]]] = {
    "en": {
        "order_status": [
            ("where is my order{ord}", ("delivery", 1)),
            ("where is my package, I ordered a {item} {when}", ("delivery", 1)),
            ("has my {item} shipped yet{ord}", ("delivery", 1)),
            ("how can I track my parcel{ord}", ("delivery", 1)),
            ("I need the tracking link for my {item}", ("delivery", 1)),
            ("can you tell me where order {n} is", ("delivery", 1)),
            ("when will my {item} arrive", ("delivery", 0)),
            ("how long does delivery take", ("delivery", 0)),
            ("how many days does shipping take", ("delivery", 0)),
            ("I just ordered a {item}, when will the package arrive", ("delivery", 0)),
            ("my order{ord} is more than a week late", ("delivery", 2)),
            ("I ordered a {item} {late} and the package never arrived", ("delivery", 2)),
            ("the parcel{ord} is {late} late, what now", ("delivery", 2)),
            ("how do I cancel my order{ord}", ("cancel", 0)),
            ("I want to cancel the {item} I just ordered", ("cancel", 0)),
            ("please cancel order {n}", ("cancel", 0)),
            ("can I still cancel an order that has already shipped", ("cancel", 1)),
            ("my {item} has shipped but I do not want it anymore, can I cancel it", ("cancel", 1)),
        ],
        "refund": [
            ("I want a refund for my {item}{ord}", ("refund", 0)),
            ("how long does a refund take", ("refund", 0)),
            ("I sent back the {item} {when}, when do I get my refund", ("refund", 0)),
            ("can I get my money back for the {item}", ("refund", 0)),
            ("I returned my order{ord}, where is my refund", ("refund", 0)),
            ("when will the refund for order {n} reach my card", ("refund", 0)),
            ("the {item} arrived damaged and I want a refund", ("refund", 1)),
            ("my {item} came broken, do I have to return it for a refund", ("refund", 1)),
            ("the {item} in order {n} is damaged, I want my money back", ("refund", 1)),
            ("my order{ord} arrived damaged, I want a refund", ("refund", 1)),
            ("the {item} I received is broken, can I get my money back", ("refund", 1)),
            ("I got a broken {item}, how do I get a refund", ("refund", 1)),
        ],
        "billing": [
            ("I was charged twice for my order{ord}", ("billing", 0)),
            ("there are two charges of {amount} on my card", ("billing", 0)),
            ("why did you charge me {amount} twice", ("billing", 0)),
            ("I see a double charge on my bill", ("billing", 0)),
            ("my card was charged {amount} two times for one order", ("billing", 0)),
            ("how do I get an invoice for my order{ord}", ("billing", 1)),
            ("I need an invoice for the {item}", ("billing", 1)),
            ("where can I download my invoice", ("billing", 1)),
            ("can you send me the invoice for order {n}", ("billing", 1)),
        ],
        "technical": [
            ("I forgot my password", ("password", 0)),
            ("how do I reset my password", ("password", 0)),
            ("I cannot log in to the app", ("password", 0)),
            ("the login keeps failing, what do I do", ("password", 0)),
            ("I am locked out, my password is not accepted", ("password", 0)),
            ("the password reset link does not work anymore", ("password", 1)),
            ("the reset link in your email says it has expired", ("password", 1)),
            ("the app keeps crashing when I open it", None),
            ("the checkout page shows an error when I try to pay", None),
            ("your website is not loading on my phone", None),
            ("the app is stuck on a white screen", None),
        ],
        "account": [
            ("how do I change my delivery address", None),
            ("I want to update the email address on my account", None),
            ("please change the phone number on my account", None),
            ("how do I cancel my subscription", None),
            ("I want to delete my account", None),
            ("can I change the name on my account", None),
            ("I moved house, please update my address", None),
        ],
        "complaint": [
            ("I want to make a complaint about your service", None),
            ("your courier was very rude to me", None),
            ("nobody answered my emails for a week", None),
            ("this is the worst shop I have ever used", None),
            ("I am not happy with how I was treated", None),
            ("I want to complain about the driver who delivered my {item}", None),
        ],
        "human_agent": [
            ("can I speak to a real person", ("hours", 0)),
            ("put me through to a human agent", ("hours", 0)),
            ("I want to talk to a manager", ("hours", 0)),
            ("let me talk to a human, not a bot", ("hours", 0)),
            ("get me a supervisor", ("hours", 0)),
            ("when can I talk to a human agent", ("hours", 0)),
            ("I would like to speak with a person about my order{ord}", ("hours", 0)),
        ],
        "greeting": [
            ("hello", "hello"), ("hi there", "hello"), ("good morning", "hello"), ("hey, is anyone there", "hello"),
            ("hello, is this customer service", "hello"), ("good afternoon", "hello"),
            ("thanks, that is all", "thanks"), ("thank you, bye", "thanks"), ("great, thanks for your help", "thanks"),
            ("ok thank you very much", "thanks"), ("that solved it, thanks", "thanks"),
        ],
        "other": [
            ("what is the weather tomorrow", "scope"), ("can you write me a poem", "scope"),
            ("do you sell bicycles", "scope"), ("what is the capital of France", "scope"),
            ("tell me a joke", "scope"), ("who won the football game yesterday", "scope"),
            ("can you help me with my homework", "scope"), ("what time is it in Tokyo", "scope"),
            ("recommend a good movie", "scope"), ("how do I cook rice", "scope"),
        ],
    },
    "zh": {
        "order_status": [
            ("我的订单到哪了{ord}", ("delivery", 1)),
            ("我{when}买了{item}，包裹现在在哪", ("delivery", 1)),
            ("我的{item}发货了吗{ord}", ("delivery", 1)),
            ("快递怎么查物流{ord}", ("delivery", 1)),
            ("订单{n}的快递到哪里了", ("delivery", 1)),
            ("我的{item}什么时候到货", ("delivery", 0)),
            ("快递一般几天能到", ("delivery", 0)),
            ("配送要多久才能到货", ("delivery", 0)),
            ("我的订单{ord}已经晚了一个多星期了", ("delivery", 2)),
            ("我{late}买的{item}一直没到货", ("delivery", 2)),
            ("订单{n}迟迟没到，已经延迟{late}了", ("delivery", 2)),
            ("怎么取消订单{ord}", ("cancel", 0)),
            ("我想取消刚下单的{item}", ("cancel", 0)),
            ("请帮我取消订单{n}", ("cancel", 0)),
            ("已经发货的订单还能取消吗", ("cancel", 1)),
            ("{item}已经发货了，我不想要了，还能取消吗", ("cancel", 1)),
        ],
        "refund": [
            ("我想给{item}退款{ord}", ("refund", 0)),
            ("退款多久能到账", ("refund", 0)),
            ("我{when}退货了，退款什么时候到", ("refund", 0)),
            ("我已经把{item}退回去了，钱什么时候退给我", ("refund", 0)),
            ("订单{n}的退款到哪了", ("refund", 0)),
            ("收到的{item}坏了，我要退款", ("refund", 1)),
            ("{item}是坏的，退款需要把东西寄回去吗", ("refund", 1)),
            ("订单{n}里的{item}坏了，我要退钱", ("refund", 1)),
        ],
        "billing": [
            ("我被重复扣款了{ord}", ("billing", 0)),
            ("我的卡被扣了两次{amount}", ("billing", 0)),
            ("为什么扣了我两次{amount}", ("billing", 0)),
            ("账单上有两笔一样的扣款", ("billing", 0)),
            ("一个订单扣了两次钱", ("billing", 0)),
            ("怎么开发票{ord}", ("billing", 1)),
            ("我需要{item}的发票", ("billing", 1)),
            ("在哪里下载发票", ("billing", 1)),
            ("请把订单{n}的发票发给我", ("billing", 1)),
        ],
        "technical": [
            ("我忘记密码了", ("password", 0)),
            ("怎么重置密码", ("password", 0)),
            ("APP登录不上去", ("password", 0)),
            ("一直登录失败怎么办", ("password", 0)),
            ("密码总是提示错误，登录不了", ("password", 0)),
            ("重置密码的链接打不开了", ("password", 1)),
            ("邮件里的重置密码链接说已经过期", ("password", 1)),
            ("APP一打开就闪退", None),
            ("付款的时候页面报错", None),
            ("网站在手机上打不开", None),
        ],
        "account": [
            ("怎么修改收货地址", None),
            ("我想换绑账号的邮箱", None),
            ("请帮我改一下账户的手机号", None),
            ("怎么取消自动续费的订阅", None),
            ("我想注销账号", None),
            ("我搬家了，请更新我的地址", None),
        ],
        "complaint": [
            ("我要投诉你们的快递员，态度太差了", None),
            ("你们的服务太让人失望了", None),
            ("客服一个星期都不回我的邮件", None),
            ("我要投诉送{item}的司机", None),
            ("我对你们的处理方式很不满", None),
        ],
        "human_agent": [
            ("转人工", ("hours", 0)),
            ("我要找人工客服", ("hours", 0)),
            ("让你们经理来跟我说", ("hours", 0)),
            ("能不能让真人接电话", ("hours", 0)),
            ("人工客服什么时候在线", ("hours", 0)),
            ("我不要机器人，给我转人工", ("hours", 0)),
        ],
        "greeting": [
            ("你好", "hello"), ("您好，在吗", "hello"), ("早上好", "hello"), ("喂，是客服吗", "hello"),
            ("谢谢，没有别的问题了", "thanks"), ("好的谢谢，再见", "thanks"), ("问题解决了，谢谢你", "thanks"),
        ],
        "other": [
            ("明天天气怎么样", "scope"), ("给我写一首诗", "scope"), ("你们卖自行车吗", "scope"),
            ("讲个笑话吧", "scope"), ("法国的首都是哪里", "scope"), ("推荐一部好看的电影", "scope"),
            ("米饭怎么煮", "scope"), ("帮我做一下数学作业", "scope"),
        ],
    },
}

#: the key value of each FAQ sentence: what a grounded reply must state (checked against faq.json at generation)
KEYS: dict[tuple[str, int], dict[str, str]] = {
    ("refund", 0): {"en": "5 business days", "zh": "5个工作日"},
    ("refund", 1): {"en": "without a return", "zh": "无需退回"},
    ("delivery", 0): {"en": "3 to 5 business days", "zh": "3到5个工作日"},
    ("delivery", 1): {"en": "tracking link", "zh": "物流链接"},
    ("delivery", 2): {"en": "7 days", "zh": "7天"},
    ("password", 0): {"en": "Forgot password", "zh": "忘记密码"},
    ("password", 1): {"en": "30 minutes", "zh": "30分钟"},
    ("billing", 0): {"en": "3 days", "zh": "3天"},
    ("billing", 1): {"en": "Orders page", "zh": "订单页面"},
    ("cancel", 0): {"en": "until they ship", "zh": "发货前"},
    ("cancel", 1): {"en": "return the item", "zh": "退回商品"},
    ("hours", 0): {"en": "9:00 to 18:00", "zh": "9:00到18:00"},
}

#: how often each intent is drawn
WEIGHTS = {"order_status": 16, "refund": 14, "billing": 12, "technical": 12, "account": 9, "complaint": 9,
           "human_agent": 9, "greeting": 8, "other": 11}
TONES = (("polite", 25), ("neutral", 43), ("negative", 20), ("angry", 12))

ITEMS = {"en": ["lamp", "blender", "pair of shoes", "jacket", "phone case", "coffee maker", "backpack", "headphones",
                "desk chair", "kettle", "watch", "rug"],
         "zh": ["台灯", "搅拌机", "鞋子", "外套", "手机壳", "咖啡机", "背包", "耳机", "椅子", "水壶", "手表", "地毯"]}
WHEN = {"en": ["yesterday", "two days ago", "on Monday", "last week", "three days ago", "this morning"],
        "zh": ["昨天", "前天", "周一", "上周", "三天前", "今天早上"]}
LATE = {"en": ["two weeks ago", "ten days ago", "over a week ago", "12 days ago"],
        "zh": ["两个星期", "十天", "一个多星期", "12天"]}

REPLIES = {
    "en": {
        "opener": {"order_status": "Let me help with your order.", "refund": "I can help with your refund.",
                   "billing": "I can help with your bill.", "technical": "Let me help with that.",
                   "account": "I can help with your account.", "complaint": "I am sorry to hear that.",
                   "human_agent": "Of course."},
        "negative": "I am sorry about that.", "angry": "I am very sorry for the trouble.",
        "order": "I see order {n}.", "amount": "I see the charge of {amount}.",
        "followup": "A colleague will follow up on this shortly.",
        "scope": "Sorry, I can only help with orders, refunds, billing and your account.",
        "hello": "Hello! How can I help you today?", "thanks": "You are welcome. Have a nice day!",
    },
    "zh": {
        "opener": {"complaint": "很抱歉听到这个。"},
        "default_opener": "好的。",
        "negative": "很抱歉。", "angry": "非常抱歉。",
        "order": "我看到了订单{n}。", "amount": "我看到了{amount}的扣款。",
        "followup": "我们的同事会尽快跟进。",
        "scope": "抱歉，我只能处理订单、退款、账单和账户问题。",
        "hello": "您好！请问有什么可以帮您？", "thanks": "不客气，祝您愉快！",
    },
}

_WRAP = {
    "en": {
        "polite_pre": ["Hi, ", "Hello, ", "Good afternoon, ", "Excuse me, ", "Sorry to bother you, "],
        "polite_post": [" please", ", thank you", ". Thanks a lot", ". I would really appreciate your help"],
        "neutral_pre": ["", "", "", "Um, ", "So ", "Hey, ", "Yeah, ", "Hi, "],
        "negative": ["This is really annoying.", "I am quite disappointed.", "This is the second time this happened.",
                     "I have been waiting for ages.", "Honestly this is frustrating."],
        "angry": ["This is unacceptable!", "I am furious!", "Worst service ever!", "This is ridiculous!!",
                  "I am so angry right now!"],
        "fillers": ["uh", "um", "like", "you know", "so"],
    },
    "zh": {
        "polite_pre": ["您好，", "你好，", "麻烦问一下，", "打扰一下，"],
        "polite_post": ["，谢谢", "，麻烦了", "，谢谢您"],
        "neutral_pre": ["", "", "", "嗯，", "那个，", "喂，", "你好，"],
        "negative": ["真的很烦。", "太让人失望了。", "这已经是第二次了。", "我等了好久了。"],
        "angry": ["太差了！", "气死我了！", "你们这是什么服务！", "简直不可理喻！"],
        "fillers": ["嗯", "那个", "就是"],
    },
}
_WANT = ("I would like ", "I'd like ", "I need ")  # other ways callers say "I want "
_QUESTION_EN = ("where", "how", "when", "can", "has", "why", "do", "what", "is", "who", "could")
_QUESTION_ZH = ("吗", "呢", "吧", "怎么", "什么", "哪", "多久", "几天", "能不能", "为什么")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；])")  # as puyu_apps.service.tts


@dataclass
class Case:
    """One generated caller turn with its truth."""

    lang: str
    intent: str
    text: str
    tone: str
    channel: str                       # "text" | "voice" (ASR-style)
    answer: Answer
    order: str | None = None
    amount: str | None = None
    history: list[dict[str, str]] = field(default_factory=list)
    complaints: int = 0                # complaints in the session including this turn


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def normalise(text: str) -> str:
    """The de-duplication key of an utterance: lower case, letters and digits only."""
    return re.sub(r"[\W_]+", "", text.lower())


def _pick(rng: random.Random, pairs: tuple[tuple[str, int], ...] | dict[str, int]) -> str:
    items = list(pairs.items()) if isinstance(pairs, dict) else list(pairs)
    return rng.choices([k for k, _ in items], weights=[w for _, w in items])[0]


def _typo(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    idx = [i for i, w in enumerate(words) if w.isalpha() and len(w) >= 5]
    if not idx:
        return text
    i = rng.choice(idx)
    w = words[i]
    j = rng.randrange(1, len(w) - 2)
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:] if rng.random() < 0.6 else w[:j] + w[j + 1:]
    return " ".join(words)


def _asr_style(rng: random.Random, text: str, lang: str) -> str:
    """What a speech recogniser without punctuation would write."""
    if lang == "zh":
        return re.sub(r"[，。？！、,?!（）()]|(?<!\d)\.|\.(?!\d)", "", text)
    text = re.sub(r"\$(\d+(?:\.\d+)?)", r"\1 dollars", text)
    text = re.sub(r"(?<!\d)[.,!?;:()\"]|[.,!?;:()\"](?!\d)", "", text.lower())
    words = text.split()
    if len(words) > 3 and rng.random() < 0.4:
        words.insert(rng.randrange(1, len(words)), rng.choice(_WRAP["en"]["fillers"]))
    return " ".join(words)


def _utterance(rng: random.Random, lang: str, phrase: str, tone: str,
               intent: str) -> tuple[str, str | None, str | None]:
    """Fill the slots and wrap the phrase in the tone's words. Returns (text, order number, amount)."""
    w = _WRAP[lang]
    order = amount = None
    slots: dict[str, str] = {"item": rng.choice(ITEMS[lang]), "when": rng.choice(WHEN[lang]),
                             "late": rng.choice(LATE[lang]), "ord": "", "n": "", "amount": ""}
    if "{n}" in phrase or ("{ord}" in phrase and rng.random() < 0.35):
        order = str(rng.randint(10000, 999999))
        slots["n"] = order
        if "{ord}" in phrase:
            slots["ord"] = rng.choice([", order number {n}", ", the order number is {n}", " (order {n})"]
                                      if lang == "en" else ["，订单号{n}", "（订单号{n}）", "，订单号是{n}"]).format(n=order)
    if "{amount}" in phrase:
        value = rng.randint(5, 300)
        cents = rng.choice(["", ".99", ".50", ".00"])
        amount = rng.choice([f"${value}{cents}", f"{value}{cents} dollars"]) if lang == "en" else f"{value}{cents}元"
        slots["amount"] = amount
    body = phrase.format(**slots)
    if lang == "en" and "I want " in body and rng.random() < 0.4:
        body = body.replace("I want ", rng.choice(_WANT), 1)
    if lang == "en":
        q = body.split(" ")[0].lower() in _QUESTION_EN or " can I " in f" {body} "
        if tone == "polite":
            pre, post = rng.choice(w["polite_pre"]), rng.choice(w["polite_post"])
            if q and post.startswith("."):  # "where is my order? Thanks a lot."
                text = f"{pre}{body}?{post[1:]}."
            else:
                text = f"{pre}{body}{post}{'?' if q else '.'}"
        else:
            pre = rng.choice(w["neutral_pre"])
            text = f"{pre}{body}{'?' if q else rng.choice(['.', '.', '!' if tone == 'angry' else '.'])}"
        text = text[0].upper() + text[1:]
    else:
        q = any(m in body for m in _QUESTION_ZH)
        if tone == "polite":
            pre, post = rng.choice(w["polite_pre"]), rng.choice(w["polite_post"])
            text = f"{pre}{body}？{post[1:]}。" if q else f"{pre}{body}{post}。"  # "……吗？谢谢。"
        else:
            text = f"{rng.choice(w['neutral_pre'])}{body}{'？' if q else ('！' if tone == 'angry' else '。')}"
    if tone in ("negative", "angry") and intent != "greeting":
        extra = rng.choice(w[tone])
        sep = " " if lang == "en" else ""
        text = f"{extra}{sep}{text}" if rng.random() < 0.4 else f"{text}{sep}{extra}"
    return text, order, amount


def _draw_case(rng: random.Random, lang: str) -> Case:
    intent = _pick(rng, WEIGHTS)
    phrase, answer = rng.choice(CASES[lang][intent])
    tone = _pick(rng, TONES)
    if intent == "greeting":
        tone = "polite" if tone in ("negative", "angry") else tone
    elif intent == "other" and tone == "angry":
        tone = "negative"
    elif intent == "complaint" and tone in ("polite", "neutral") and rng.random() < 0.5:
        tone = "negative"
    text, order, amount = _utterance(rng, lang, phrase, tone, intent)
    channel = "voice" if rng.random() < 0.3 else "text"
    if channel == "voice":
        text = _asr_style(rng, text, lang)
        if amount and amount.startswith("$"):
            amount = amount[1:] + " dollars"  # as the recogniser wrote it
    elif lang == "en" and rng.random() < 0.15:
        text = _typo(rng, text)
    return Case(lang, intent, text, tone, channel, answer, order, amount)


def _sentiment_label(tone: str) -> str:
    return {"negative": "negative", "angry": "angry"}.get(tone, "neutral")


def _fact(prompts: ServicePrompts, answer: Answer, lang: str, hits: list) -> tuple[str, dict[str, Any]] | None:
    """The FAQ sentence that answers the case, when retrieval put its entry among the facts."""
    if not isinstance(answer, tuple):
        return None
    fid, idx = answer
    for entry, _ in hits:
        if entry.id == fid:
            sents = sentences(entry.answer_for(lang))
            key = KEYS[answer][lang]
            if idx >= len(sents) or key.lower() not in sents[idx].lower():
                raise ValueError(f"{prompts.kb.source}: FAQ entry {fid!r} sentence {idx} ({lang}) no longer states "
                                 f"{key!r}; update KEYS/CASES in puyu_apps/service/training_data.py with the FAQ")
            return sents[idx], {"id": fid, "sentence": idx, "key": key}
    return None


def gold_reply(prompts: ServicePrompts, case: Case, hits: list) -> tuple[str, list[dict[str, Any]]]:
    """The reply the adapter should speak for ``case`` given the retrieved ``hits``, and the facts it states."""
    r = REPLIES[case.lang]
    join = " " if case.lang == "en" else ""
    if case.answer in ("hello", "thanks", "scope"):
        return r[case.answer], []
    if case.tone in ("negative", "angry"):
        opener = r[case.tone]
    elif case.amount:
        opener = r["amount"].format(amount=case.amount)
    elif case.order:
        opener = r["order"].format(n=case.order)
    else:
        opener = r["opener"].get(case.intent, r.get("default_opener", ""))
    fact = _fact(prompts, case.answer, case.lang, hits)
    if fact is None:
        return f"{opener}{join}{r['followup']}", []
    return f"{opener}{join}{fact[0]}", [fact[1]]


def case_row(prompts: ServicePrompts, case: Case, row_id: str) -> dict[str, Any]:
    """The fine-tuning row of one case (schema of ``puyu_apps.finetune.data``)."""
    hits = prompts.kb.search(case.text, k=2)
    messages = build_messages(prompts.system, prompts.user, case.text, case.lang, hits, case.history)
    reply, facts = gold_reply(prompts, case, hits)
    escalate, _ = EscalationPolicy(2).decide(_sentiment_label(case.tone), case.intent, case.complaints)
    meta = {"intent": case.intent, "escalate": escalate, "facts": facts, "faq_ids": [e.id for e, _ in hits],
            "tone": case.tone, "channel": case.channel, "order": case.order, "amount": case.amount,
            "history_turns": len(case.history) // 2, "rule_intent": classify_intent(case.text).label,
            "reply": reply, "history": case.history}
    return {"id": row_id, "lang": case.lang, "system": messages[0]["content"], "instruction": messages[1]["content"],
            "output": format_output(case.intent, reply), "meta": meta}


def approx_tokens(text: str) -> int:
    """A cheap upper estimate of SmolLM2 tokens (Chinese ~1.8 per character, English ~4 characters per token)."""
    cjk = len(re.findall(r"[\u4e00-\u9fff，。？！：；“”（）]", text))
    return int(1.9 * cjk + (len(text) - cjk) / 3.6) + 1


#: generation keeps rows within this estimated size (prompt + output, chat markup included; the estimate runs
#: 10-30 tokens above the real SmolLM2 count)
MAX_TOKENS = 340


def _approx_row(prompts: ServicePrompts, case: Case) -> int:
    row = case_row(prompts, case, "")
    return approx_tokens(row["system"] + row["instruction"] + row["output"]) + 20


def _with_history(rng: random.Random, prompts: ServicePrompts, case: Case) -> Case:
    """Earlier turns of the same call: other generated turns and the replies the caller heard."""
    turns = 1 if case.lang == "zh" or rng.random() < 0.7 else 2
    complaints = 0
    history: list[dict[str, str]] = []
    for _ in range(turns):
        prev = _draw_case(rng, case.lang)
        prev.history = list(history)
        complaints += is_complaint(_sentiment_label(prev.tone), prev.intent)
        prev.complaints = complaints
        reply, _ = gold_reply(prompts, prev, prompts.kb.search(prev.text, k=2))
        escalate, _ = EscalationPolicy(2).decide(_sentiment_label(prev.tone), prev.intent, complaints)
        if escalate:
            reply = f"{reply} {prompts.manifest['handoff'][case.lang]}"
        history += [{"role": "user", "content": prev.text}, {"role": "assistant", "content": reply}]
    case.history = history
    case.complaints = complaints
    return case


def make_cases(n: int, seed: int, langs: tuple[str, ...] = ("en", "zh"), *, split: str = "train",
               exclude: set[str] | None = None, prompts: ServicePrompts | None = None) -> list[Case]:
    """``n`` distinct cases, languages in turn, from the seed stream named by ``split`` and ``seed``."""
    prompts = prompts or ServicePrompts.load()
    rng = random.Random(f"puyu-service-{split}-{seed}")
    seen = set(exclude or ())
    out: list[Case] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 200 * n + 1000:
            raise ValueError(f"could not draw {n} distinct service cases (got {len(out)}); lower n")
        lang = langs[len(out) % len(langs)]
        case = _draw_case(rng, lang)
        key = normalise(case.text)
        if key in seen or detect_language(case.text) != lang:
            continue
        if rng.random() < 0.25:
            case = _with_history(rng, prompts, case)
        if case.history and _approx_row(prompts, case) > MAX_TOKENS:
            case.history, case.complaints = [], 0
        case.complaints += is_complaint(_sentiment_label(case.tone), case.intent)
        if _approx_row(prompts, case) > MAX_TOKENS:
            continue
        seen.add(key)
        out.append(case)
    return out


def make_examples(n: int, seed: int, langs: tuple[str, ...] = ("en", "zh"), *, split: str = "train",
                  exclude: set[str] | None = None) -> list[dict[str, Any]]:
    """``n`` fine-tuning rows ``{"id", "lang", "system", "instruction", "output", "meta"}``: the languages in turn,
    deterministic for ``(seed, split)``, no utterance twice (nor any in ``exclude``, normalised utterances)."""
    prompts = ServicePrompts.load()
    cases = make_cases(n, seed, langs, split=split, exclude=exclude, prompts=prompts)
    return [case_row(prompts, c, f"service-{split}-{seed}-{i:05d}") for i, c in enumerate(cases)]


def utterance_of(row: dict[str, Any]) -> str:
    """The caller's newest message in a row's instruction."""
    head = row["instruction"].split("\n\nShop facts:\n", 1)[0]
    return head.rsplit("Customer: ", 1)[-1]


def write_splits(out_dir: str | Path, n_train: int = 3000, n_eval: int = 200, seed: int = 0) -> tuple[Path, Path]:
    """``train.jsonl`` and the held-out ``eval.jsonl`` (about half English, half Chinese). The held-out rows come
    from their own seed stream and share no normalised utterance with train."""
    from ..finetune.data import write_jsonl

    out = Path(out_dir)
    train = make_examples(n_train, seed, split="train")
    held = make_examples(n_eval, seed, split="eval", exclude={normalise(utterance_of(r)) for r in train})
    paths = out / "train.jsonl", out / "eval.jsonl"
    write_jsonl(paths[0], train)
    write_jsonl(paths[1], held)
    return paths


# -- the task scorer (``puyu eval --vertical service``) --------------------------------------------------------
def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text.lower())


def score_output(example: Any, generated: str) -> dict[str, Any]:
    """Scores of one generated answer against a held-out row (``puyu_apps.finetune.evaluate.Scorer``).

    ``intent_accuracy``: the ``intent:`` line names the gold intent. ``fact_grounded`` (rows whose gold reply
    states a FAQ fact): the reply states that fact's key value ("5 business days", "9:00到18:00").
    ``handover_ok`` (rows whose gold reply hands over, the facts not covering the request): the reply says a
    colleague will follow up and states no FAQ fact.
    ``language_ok``: the reply is in the caller's language. ``format_ok``: an intent line with a known label and
    a reply of one to three sentences. ``gold:intent`` / ``pred:intent`` become ``intent_macro_f1``.
    ``numbers_grounded``: every number the reply states is in its prompt (the caller's words, the history, the
    facts); the pipeline's number check (:mod:`.grounding`) drops the sentences of the other replies.
    """
    from .grounding import numbers_in

    meta = getattr(example, "meta", None) or {}
    gold = meta.get("intent") or split_intent(example.output)[0] or ""
    pred, reply = split_intent(generated)
    lang = getattr(example, "lang", "en")
    scores: dict[str, Any] = {
        "intent_accuracy": float(pred == gold),
        "language_ok": float(bool(reply) and detect_language(reply) == lang),
        "format_ok": float(pred in INTENT_LABELS and 1 <= len(sentences(reply)) <= 3),
        "gold:intent": gold, "pred:intent": pred or "none",
    }
    prompt = "\n".join(m["content"] for m in example.prompt_messages()) if hasattr(example, "prompt_messages") else ""
    scores["numbers_grounded"] = float(numbers_in(reply) <= numbers_in(prompt))
    keys = [f["key"] for f in meta.get("facts", [])]
    if keys:
        scores["fact_grounded"] = float(all(_squash(k) in _squash(reply) for k in keys))
    followup = _squash(REPLIES.get(lang, REPLIES["en"])["followup"])
    if followup in _squash(meta.get("reply") or split_intent(example.output)[1]):
        # the facts do not cover the request: the reply hands over and states no FAQ fact (none is made up)
        stated = any(k.get(lang) and _squash(k[lang]) in _squash(reply) for k in KEYS.values())
        scores["handover_ok"] = float(followup in _squash(reply) and not stated)
    return scores
