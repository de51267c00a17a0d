"""The job store: long work (a CT study, a contract, a call) runs in the background; the caller polls.

Jobs live in SQLite, so a restart keeps them: jobs found ``running`` at start-up (the process died under them)
go back to ``queued`` and run again.
"""

from __future__ import annotations

import json
import contextlib
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATUSES = ("queued", "running", "done", "failed")


@dataclass
class Job:
    id: str
    vertical: str
    status: str
    created: float
    updated: float
    input_path: str | None
    text: str | None
    params: dict[str, Any]
    key_id: str | None
    attempts: int
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "vertical": self.vertical, "status": self.status, "created": self.created,
                "updated": self.updated, "attempts": self.attempts, "progress": self.progress, "error": self.error}


_COLS = "id, vertical, status, created, updated, input_path, text, params, key_id, attempts, progress, result, error"


def _row(r: tuple) -> Job:
    return Job(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8], r[9],
               json.loads(r[10]) if r[10] else None, json.loads(r[11]) if r[11] else None, r[12])


class JobStore:
    def __init__(self, db_file: Path):
        self.db_file = Path(db_file)
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        with self._tx() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, vertical TEXT NOT NULL, "
                        "status TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL, input_path TEXT, "
                        "text TEXT, params TEXT NOT NULL, key_id TEXT, attempts INTEGER NOT NULL DEFAULT 0, "
                        "progress TEXT, result TEXT, error TEXT)")
            con.execute("CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db_file, timeout=30, isolation_level="DEFERRED")

    @contextlib.contextmanager
    def _tx(self):  # one short transaction on its own connection (safe across threads)
        con = self._connect()
        try:
            with con:
                yield con
        finally:
            con.close()

    def submit(self, vertical: str, *, input_path: str | None = None, text: str | None = None,
               params: dict[str, Any] | None = None, key_id: str | None = None, job_id: str | None = None) -> str:
        job_id = job_id or uuid.uuid4().hex
        now = time.time()
        with self._tx() as con:
            con.execute(f"INSERT INTO jobs ({_COLS}) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, 0, NULL, NULL, NULL)",
                        (job_id, vertical, now, now, input_path, text, json.dumps(params or {}), key_id))
        return job_id

    def get(self, job_id: str) -> Job | None:
        with self._tx() as con:
            r = con.execute(f"SELECT {_COLS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _row(r) if r else None

    def count(self, status: str) -> int:
        with self._tx() as con:
            return con.execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (status,)).fetchone()[0]

    def counts(self) -> dict[str, int]:
        with self._tx() as con:
            rows = con.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {s: 0 for s in STATUSES} | dict(rows)

    def claim_next(self) -> Job | None:
        """Atomically move the oldest queued job to ``running`` and return it."""
        with self._tx() as con:
            r = con.execute(
                f"UPDATE jobs SET status = 'running', updated = ?, attempts = attempts + 1 WHERE id = "
                f"(SELECT id FROM jobs WHERE status = 'queued' ORDER BY created LIMIT 1) AND status = 'queued' "
                f"RETURNING {_COLS}", (time.time(),)).fetchone()
        return _row(r) if r else None

    def progress(self, job_id: str, progress: dict[str, Any]) -> None:
        with self._tx() as con:
            con.execute("UPDATE jobs SET progress = ?, updated = ? WHERE id = ?",
                        (json.dumps(progress, ensure_ascii=False), time.time(), job_id))

    def finish(self, job_id: str, result: dict[str, Any]) -> None:
        with self._tx() as con:
            con.execute("UPDATE jobs SET status = 'done', result = ?, updated = ? WHERE id = ?",
                        (json.dumps(result, ensure_ascii=False), time.time(), job_id))

    def fail(self, job_id: str, error: str) -> None:
        with self._tx() as con:
            con.execute("UPDATE jobs SET status = 'failed', error = ?, updated = ? WHERE id = ?",
                        (error, time.time(), job_id))

    def recover(self) -> int:
        """Jobs left ``running`` by a process that died go back to the queue. Returns how many."""
        with self._tx() as con:
            return con.execute("UPDATE jobs SET status = 'queued', updated = ? WHERE status = 'running'",
                               (time.time(),)).rowcount
