"""The ticket store: one ticket per session, one row per turn, through SQLAlchemy (SQLite by default, any URL).

A turn is written in two steps: ``open_turn`` right after transcription (so the caller's words survive a later
failure) and ``close_turn`` with the reply. Every database failure becomes :class:`TicketStoreError`.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from .._optional import require
from .errors import TicketStoreError


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class TicketStore:
    def __init__(self, url: str = "sqlite:///puyu_service_tickets.db", *, connect_timeout_s: float = 5.0) -> None:
        sa = require("sqlalchemy", "service")
        self.url = url
        self._sa = sa
        connect_args: dict[str, Any] = {}
        if url.startswith("sqlite"):
            connect_args = {"timeout": connect_timeout_s, "check_same_thread": False}
        elif url.startswith("postgresql"):
            connect_args = {"connect_timeout": int(connect_timeout_s)}
        try:
            self.engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
        except Exception as exc:
            raise TicketStoreError(f"ticket database URL {url!r} is not usable ({exc}); pass a SQLAlchemy URL such "
                                   f"as sqlite:///tickets.db or postgresql://user@host/db") from exc
        md = sa.MetaData()
        self.tickets = sa.Table(
            "service_tickets", md,
            sa.Column("session_id", sa.String(64), primary_key=True),
            sa.Column("customer", sa.String(128)),
            sa.Column("status", sa.String(16), nullable=False, default="open"),
            sa.Column("escalated", sa.Boolean, nullable=False, default=False),
            sa.Column("created_at", sa.DateTime, nullable=False),
            sa.Column("updated_at", sa.DateTime, nullable=False),
        )
        self.turns = sa.Table(
            "service_turns", md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("session_id", sa.String(64), sa.ForeignKey("service_tickets.session_id"), index=True),
            sa.Column("turn_index", sa.Integer, nullable=False),
            sa.Column("channel", sa.String(8), nullable=False),
            sa.Column("transcript", sa.Text, nullable=False),
            sa.Column("words_json", sa.Text),
            sa.Column("sentiment", sa.String(16)),
            sa.Column("sentiment_score", sa.Float),
            sa.Column("intent", sa.String(32)),
            sa.Column("reply", sa.Text),
            sa.Column("escalated", sa.Boolean),
            sa.Column("escalation_reason", sa.String(128)),
            sa.Column("status", sa.String(16), nullable=False),  # transcribed | answered | failed
            sa.Column("error", sa.Text),
            sa.Column("created_at", sa.DateTime, nullable=False),
        )
        self._md = md
        self._ready = False

    def _run(self, what: str, fn: Any) -> Any:
        try:
            if not self._ready:
                self._md.create_all(self.engine)
                self._ready = True
            with self.engine.begin() as conn:
                return fn(conn)
        except self._sa.exc.SQLAlchemyError as exc:
            raise TicketStoreError(f"ticket database {self.engine.url!r} failed to {what}: "
                                   f"{type(exc).__name__}: {str(exc).splitlines()[0]}; check that the database is "
                                   f"up and writable (the turn is kept in the pipeline outbox)") from exc

    def open_turn(self, session_id: str, turn_index: int, channel: str, transcript: str,
                  words: list[dict[str, Any]] | None = None, customer: str | None = None) -> int:
        sa = self._sa

        def fn(conn: Any) -> int:
            now = _utcnow()
            exists = conn.execute(sa.select(self.tickets.c.session_id)
                                  .where(self.tickets.c.session_id == session_id)).first()
            if not exists:
                conn.execute(self.tickets.insert().values(session_id=session_id, customer=customer, status="open",
                                                          escalated=False, created_at=now, updated_at=now))
            res = conn.execute(self.turns.insert().values(
                session_id=session_id, turn_index=turn_index, channel=channel, transcript=transcript,
                words_json=json.dumps(words or []), status="transcribed", created_at=now))
            return int(res.inserted_primary_key[0])

        return int(self._run("record the transcript", fn))

    def close_turn(self, turn_id: int, *, sentiment: str | None = None, sentiment_score: float | None = None,
                   intent: str | None = None, reply: str | None = None, escalated: bool = False,
                   escalation_reason: str = "", status: str = "answered", error: str | None = None) -> None:
        sa = self._sa

        def fn(conn: Any) -> None:
            conn.execute(self.turns.update().where(self.turns.c.id == turn_id).values(
                sentiment=sentiment, sentiment_score=sentiment_score, intent=intent, reply=reply,
                escalated=escalated, escalation_reason=escalation_reason, status=status, error=error))
            sid = conn.execute(sa.select(self.turns.c.session_id).where(self.turns.c.id == turn_id)).scalar_one()
            values: dict[str, Any] = {"updated_at": _utcnow()}
            if escalated:
                values.update(escalated=True, status="escalated")
            conn.execute(self.tickets.update().where(self.tickets.c.session_id == sid).values(**values))

        self._run("record the reply", fn)

    def turns_of(self, session_id: str) -> list[dict[str, Any]]:
        sa = self._sa
        rows = self._run("read the turns", lambda conn: conn.execute(
            sa.select(self.turns).where(self.turns.c.session_id == session_id)
            .order_by(self.turns.c.turn_index)).mappings().all())
        return [dict(r) for r in rows]

    def ticket(self, session_id: str) -> dict[str, Any] | None:
        sa = self._sa
        row = self._run("read the ticket", lambda conn: conn.execute(
            sa.select(self.tickets).where(self.tickets.c.session_id == session_id)).mappings().first())
        return dict(row) if row else None

    def close(self) -> None:
        self.engine.dispose()
