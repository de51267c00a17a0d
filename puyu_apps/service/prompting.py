"""The service's LM prompt and reply format, defined once: the pipeline and the training-data generator both call
:func:`build_messages`, so the adapter is trained on exactly the messages it is sent at inference.

Prompt: the system prompt (same every turn) and ONE user message holding the call so far as a transcript
(``Customer: ...`` / ``Assistant: ...`` lines), the newest message, the retrieved FAQ facts and the language
instruction. Flattening the history into the user message keeps the prompt in the fine-tuning schema
(``system`` + ``instruction``) while earlier turns still form a stable token prefix.

Reply format of the service adapter (``puyu finetune --vertical service``)::

    intent: refund
    I can help with your refund. Refunds are issued to the original payment method within 5 business days ...

The first line is stripped before anything is spoken (:class:`IntentLineFilter` works on the token stream) and
recorded as the model's intent; a reply without that line (the base model) is used as it is.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

#: the intent labels of the rule classifier (``intent.py``) and of the adapter's ``intent:`` line
INTENT_LABELS = ("greeting", "order_status", "refund", "billing", "technical", "account", "complaint",
                 "human_agent", "other")

NO_FACTS = "- (no matching entry)"


def detect_language(text: str) -> str:
    cjk = len(re.findall(r"[\u4e00-\u9fff]", text))
    return "zh" if cjk and cjk >= 0.2 * len(re.sub(r"\s", "", text)) else "en"


@dataclass
class ServicePrompts:
    """The vertical's prompt templates, FAQ and manifest (``verticals/service``)."""

    system: str
    user: str
    kb: Any  # KnowledgeBase
    manifest: dict[str, Any]

    @classmethod
    def load(cls, faq_path: str | Path | None = None, vertical: str = "service") -> "ServicePrompts":
        from ..paths import vertical_dir
        from .knowledge import KnowledgeBase

        vdir = vertical_dir(vertical)
        manifest = json.loads((vdir / "manifest.json").read_text(encoding="utf-8"))
        system = (vdir / manifest["prompts"]["system"]).read_text(encoding="utf-8")
        user = (vdir / manifest["prompts"]["user"]).read_text(encoding="utf-8")
        return cls(system, user, KnowledgeBase.load(faq_path or vdir / manifest["faq"]), manifest)


def facts_block(hits: Sequence[tuple[Any, float]], lang: str) -> str:
    return "\n".join(f"- {e.answer_for(lang)}" for e, _ in hits) or NO_FACTS


def language_instruction(lang: str) -> str:
    return "Answer in Chinese (用中文回答)." if lang == "zh" else "Answer in English."


def history_block(history: Iterable[dict[str, str]]) -> str:
    """Earlier turns as transcript lines, ending in a newline ("" for the first turn)."""
    names = {"user": "Customer", "assistant": "Assistant"}
    return "".join(f"{names.get(m['role'], m['role'].capitalize())}: {m['content']}\n" for m in history)


def build_messages(system_template: str, user_template: str, text: str, lang: str,
                   hits: Sequence[tuple[Any, float]], history: Iterable[dict[str, str]] = ()) -> list[dict[str, str]]:
    """The two messages the service sends to the LM for one caller turn (also a training row's
    ``system`` / ``instruction``)."""
    user = user_template.format(history=history_block(history), message=text, faq=facts_block(hits, lang),
                                language_instruction=language_instruction(lang))
    return [{"role": "system", "content": system_template.strip()}, {"role": "user", "content": user}]


def format_output(intent: str, reply: str) -> str:
    """What the service adapter writes: the intent line, then the spoken reply."""
    return f"intent: {intent}\n{reply}"


_HEAD_PREFIX = re.compile(r"i(?:n(?:t(?:e(?:n(?:t\s*)?)?)?)?)?", re.IGNORECASE)  # a start of "intent"
_HEAD = re.compile(r"intent\s*[:：]\s*([A-Za-z_]*)", re.IGNORECASE)


class IntentLineFilter:
    """Streaming filter: text pieces in, the text to speak out, with a leading ``intent: LABEL`` line removed.

    Pieces may split anywhere ("int" + "ent: ref" + "und\\nSorry"). Text is held back only while it could still be
    the start of an intent line, so a reply without one (the base model) streams as before, at most one piece
    later. ``intent`` is the label (lower case) once the line has been read, else None.
    """

    def __init__(self) -> None:
        self.intent: str | None = None
        self._buf = ""
        self._head = True

    def feed(self, piece: str) -> str:
        if not self._head:
            return piece
        self._buf += piece
        text = self._buf.lstrip()
        if not text or _HEAD_PREFIX.fullmatch(text):
            return ""  # could still become "intent:"
        m = _HEAD.match(text)
        if m is None:  # an ordinary reply
            return self._release(self._buf)
        rest = text[m.end():]
        if not rest:
            return ""  # the label may go on in the next piece
        self.intent = m.group(1).lower() or None
        return self._release(re.sub(r"^[^\S\n]*(?:[.,;:。，；：]|\n)?\s*", "", rest, count=1))

    def finish(self) -> str:
        """The held-back text at the end of the stream ("" when it was an intent line without a reply)."""
        if not self._head:
            return ""
        text = self._buf.lstrip()
        m = _HEAD.match(text)
        if m is not None and not text[m.end():].strip():
            self.intent = m.group(1).lower() or None
            return self._release("")
        return self._release(self._buf)

    def _release(self, text: str) -> str:
        self._head, self._buf = False, ""
        return text


def split_intent(text: str) -> tuple[str | None, str]:
    """``(model intent or None, reply)`` of a whole generated text; the same rules as the streaming filter."""
    f = IntentLineFilter()
    reply = f.feed(text) + f.finish()
    return f.intent, reply.strip()
