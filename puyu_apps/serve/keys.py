"""API keys, hashed at rest (salted SHA-256; the plain key is shown once), with a per-key token-bucket rate limit.

A key reads ``puyu-<id>-<secret>``: the id finds the row, the secret is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import contextlib
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class KeyRecord:
    id: str
    name: str
    rate_per_min: float
    created: float


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


class KeyStore:
    def __init__(self, db_file: Path):
        self.db_file = Path(db_file)
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        with self._tx() as con:
            con.execute("CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
                        "salt TEXT NOT NULL, hash TEXT NOT NULL, rate_per_min REAL NOT NULL, created REAL NOT NULL, "
                        "revoked INTEGER NOT NULL DEFAULT 0)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db_file, timeout=30)

    @contextlib.contextmanager
    def _tx(self):  # one short transaction on its own connection (safe across threads)
        con = self._connect()
        try:
            with con:
                yield con
        finally:
            con.close()

    def create(self, name: str, rate_per_min: float = 60.0) -> str:
        """Store a new key and return it in plain text (the only time it is visible)."""
        if not name.strip():
            raise ValueError("name: give the key a non-empty name (who or what uses it)")
        if rate_per_min < 0:
            raise ValueError(f"rate_per_min must be >= 0 (0: unlimited), got {rate_per_min}")
        key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(24), secrets.token_hex(8)
        with self._tx() as con:
            con.execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, 0)",
                        (key_id, name, salt, _hash(salt, secret), rate_per_min, time.time()))
        return f"puyu-{key_id}-{secret}"

    def revoke(self, key_id: str) -> bool:
        with self._tx() as con:
            return con.execute("UPDATE api_keys SET revoked = 1 WHERE id = ?", (key_id,)).rowcount > 0

    def active_count(self) -> int:
        with self._tx() as con:
            return con.execute("SELECT COUNT(*) FROM api_keys WHERE revoked = 0").fetchone()[0]

    def list(self) -> list[KeyRecord]:
        with self._tx() as con:
            rows = con.execute("SELECT id, name, rate_per_min, created FROM api_keys WHERE revoked = 0").fetchall()
        return [KeyRecord(*r) for r in rows]

    def verify(self, token: str | None) -> KeyRecord | None:
        if not token or not token.startswith("puyu-") or token.count("-") < 2:
            return None
        _, key_id, secret = token.split("-", 2)
        with self._tx() as con:
            row = con.execute("SELECT id, name, rate_per_min, created, salt, hash FROM api_keys "
                              "WHERE id = ? AND revoked = 0", (key_id,)).fetchone()
        if row is None or not hmac.compare_digest(_hash(row[4], secret), row[5]):
            return None
        return KeyRecord(*row[:4])


class RateLimiter:
    """Token buckets keyed by client: ``rate_per_min`` tokens per minute, a burst of as many (at least 1)."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str, rate_per_min: float) -> tuple[bool, float]:
        """(allowed, seconds to wait before the next request would be allowed)."""
        if rate_per_min <= 0:
            return True, 0.0
        burst = max(rate_per_min, 1.0)
        per_s = rate_per_min / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (burst, now))
            tokens = min(burst, tokens + (now - last) * per_s)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                return True, 0.0
            self._buckets[client] = (tokens, now)
            return False, (1.0 - tokens) / per_s
