"""Intent by keyword rules (English + Chinese), and the escalation policy."""

from __future__ import annotations

from dataclasses import dataclass

INTENTS: dict[str, tuple[str, ...]] = {
    "human_agent": ("human", "real person", "manager", "supervisor", "agent please", "人工", "转人工", "经理"),
    "refund": ("refund", "money back", "return", "reimburse", "退款", "退货", "退钱"),
    "order_status": ("order", "delivery", "deliver", "arrive", "package", "parcel", "shipping",
                     "tracking", "shipped", "订单", "快递", "物流", "发货", "到货", "包裹"),
    "billing": ("bill", "charge", "charged", "invoice", "payment", "pay", "price", "账单", "扣款", "付款", "发票",
                "收费"),
    "technical": ("not working", "broken", "error", "crash", "login", "log in", "password", "app", "reset",
                  "connect", "故障", "坏了", "登录", "密码", "无法"),
    "account": ("account", "address", "email", "phone number", "subscription", "账户", "账号", "地址", "订阅"),
    "complaint": ("complaint", "complain", "unacceptable", "terrible", "worst", "rude", "投诉", "不满"),
    "greeting": ("hello", "hi ", "good morning", "你好", "您好"),
}
_PRIORITY = ("human_agent", "refund", "complaint", "billing", "technical", "order_status", "account", "greeting")
# specific requests outweigh the generic words that come with them ("my order ... I want a refund" is a refund)
_WEIGHT = {"human_agent": 3.0, "refund": 2.5, "complaint": 2.0, "billing": 1.5, "technical": 1.5}


@dataclass
class Intent:
    label: str
    confidence: float
    matched: list[str]


def classify_intent(text: str) -> Intent:
    """Count keyword hits per intent; the most hits wins, ties broken by ``_PRIORITY``."""
    low = f" {text.lower()} "
    hits = {name: [k for k in keys if k in low] for name, keys in INTENTS.items()}
    scored = sorted(((len(v) * _WEIGHT.get(n, 1.0), -_PRIORITY.index(n), n) for n, v in hits.items() if v),
                    reverse=True)
    if not scored:
        return Intent("other", 0.0, [])
    n, _, name = scored[0]
    total = sum(s[0] for s in scored)
    return Intent(name, round(n / total, 3), hits[name])


@dataclass
class EscalationPolicy:
    """Escalate on anger, on an explicit request for a person, or on the ``max_complaints``-th complaint."""

    max_complaints: int = 2

    def __post_init__(self) -> None:
        if self.max_complaints < 1:
            raise ValueError(f"EscalationPolicy.max_complaints must be >= 1, got {self.max_complaints}")

    def decide(self, sentiment_label: str, intent: str, complaints_so_far: int) -> tuple[bool, str]:
        if intent == "human_agent":
            return True, "the caller asked for a person"
        if sentiment_label == "angry":
            return True, "the caller is angry"
        if complaints_so_far >= self.max_complaints:
            return True, f"repeated complaint ({complaints_so_far} in this session)"
        return False, ""


def is_complaint(sentiment_label: str, intent: str) -> bool:
    return intent == "complaint" or sentiment_label in ("negative", "angry")
