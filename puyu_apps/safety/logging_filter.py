"""PII never reaches the logs: every record of the ``puyu_apps`` (and ``uvicorn``) loggers is masked when it is
created, whatever handler later writes it."""

from __future__ import annotations

import logging
import threading

from .pii import mask_pii

DEFAULT_PREFIXES = ("puyu_apps", "uvicorn")
_lock = threading.Lock()
_installed: dict[str, object] = {}


class PIIMaskingFilter(logging.Filter):
    """A logging filter that masks PII in the formatted message (for handlers outside puyu_apps, too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


def mask_record(record: logging.LogRecord) -> None:
    """Mask PII in a record. Arguments are masked one by one when that suffices (formatters such as uvicorn's
    access log unpack ``record.args``); otherwise the message is flattened to its masked text."""
    if getattr(record, "_pii_masked", False):
        return
    record._pii_masked = True  # type: ignore[attr-defined]
    try:
        message = record.getMessage()
    except Exception:  # a malformed record is left for logging itself to report
        return
    masked = mask_pii(message)
    if masked == message:
        return
    original = (record.msg, record.args)
    if isinstance(record.msg, str):
        record.msg = mask_pii(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(mask_pii(a) if isinstance(a, str) else a for a in record.args)
    elif isinstance(record.args, dict):
        record.args = {k: mask_pii(v) if isinstance(v, str) else v for k, v in record.args.items()}
    try:
        ok = record.getMessage() == masked
    except Exception:
        ok = False
    if not ok:
        record.msg, record.args = masked, ()
    del original


def install_log_masking(prefixes: tuple[str, ...] = DEFAULT_PREFIXES) -> None:
    """Mask PII in every record created by a logger under ``prefixes``. Idempotent."""
    with _lock:
        if "factory" in _installed:
            _installed["prefixes"] = tuple(sorted(set(_installed["prefixes"]) | set(prefixes)))  # type: ignore
            return
        previous = logging.getLogRecordFactory()
        _installed["prefixes"] = tuple(prefixes)

        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            name = record.name
            if any(name == p or name.startswith(p + ".") for p in _installed["prefixes"]):  # type: ignore
                mask_record(record)
            return record

        _installed["factory"] = factory
        _installed["previous"] = previous
        logging.setLogRecordFactory(factory)


def uninstall_log_masking() -> None:
    with _lock:
        if "factory" in _installed and logging.getLogRecordFactory() is _installed["factory"]:
            logging.setLogRecordFactory(_installed["previous"])  # type: ignore[arg-type]
        _installed.clear()
