"""Structured logs with contact details redacted, and the Prometheus metrics."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import phonenumbers
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_DIGITS = re.compile(r"\d")
# E.164 and other compact forms phonenumbers' matcher misses when no region can be guessed.
_E164 = re.compile(r"\+\d{8,15}")
_SECRET_KEYS = ("token", "password", "secret", "authorization", "auth_token")
# Fields that hold our own identifiers and clock readings (alert ids, provider SIDs, leases,
# timestamps): their digits are never a phone number, so only e-mail addresses are masked.
_IDENTIFIER_KEYS = re.compile(r"(^|_)(id|ids|sid|ts|at|ms|s|version|seq|count|attempt)$")


def redact_text(text: str, *, digits: bool = True) -> str:
    """Mask e-mail addresses and phone numbers in free text.

    A run of digits glued to letters or to a decimal point (``SM0123...``, ``1764685913.25``)
    is part of a word, not a number someone dials, and is left as it is.
    """
    if "@" in text:
        text = EMAIL.sub("[email]", text)
    if digits and len(_DIGITS.findall(text)) >= 7:
        text = _E164.sub("[phone]", text)
        spans = [
            (m.start, m.end)
            for m in phonenumbers.PhoneNumberMatcher(text, "US", leniency=0)
            if not _inside_word(text, m.start, m.end)
        ]
        for start, end in reversed(spans):
            text = text[:start] + "[phone]" + text[end:]
    return text


def _inside_word(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    after_next = text[end + 1] if end + 1 < len(text) else " "
    return (
        before.isalnum() or before in "_."
        or after.isalnum() or after == "_"
        or (after == "." and after_next.isdigit())
    )


def _scrub(value: Any, *, digits: bool = True) -> Any:
    if isinstance(value, str):
        return redact_text(value, digits=digits)
    if isinstance(value, dict):
        return {k: _scrub(v, digits=digits and not _is_identifier(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v, digits=digits) for v in value]
    return value


def _is_identifier(key: object) -> bool:
    return isinstance(key, str) and _IDENTIFIER_KEYS.search(key.lower()) is not None


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: secrets masked by key, contact details masked in every value."""
    for key in list(event):
        if any(word in key.lower() for word in _SECRET_KEYS):
            event[key] = "***"
        else:
            event[key] = _scrub(event[key], digits=not _is_identifier(key))
    return event


def configure_logging(level: str = "info", *, json_lines: bool = True) -> None:
    """JSON lines on stderr for Clarion and for the libraries it uses, all redacted."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        # Events below the level are dropped first, before any processor (redaction is not
        # free) runs on them.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries whose debug lines carry recipients' addresses or provider URLs stay at warning.
    for noisy in ("aiohttp.access", "mail.log", "asyncio", "aiosqlite", "apprise", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class Metrics:
    """The service's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.alerts = Counter(
            "clarion_alerts_total",
            "Alerts accepted, by kind and mode",
            ["kind", "mode"],
            registry=r,
        )
        self.rejected = Counter(
            "clarion_alerts_rejected_total",
            "Alert requests refused, by reason",
            ["reason"],
            registry=r,
        )
        self.deliveries = Counter(
            "clarion_deliveries_total",
            "Delivery outcomes, by channel",
            ["channel", "outcome"],
            registry=r,
        )
        self.late_receipts = Counter(
            "clarion_late_receipts_total",
            "Callbacks and acks recorded, by channel and outcome",
            ["channel", "outcome"],
            registry=r,
        )
        self.rejected_input = Counter(
            "clarion_rejected_input_total",
            "Malformed or forged input dropped, by source",
            ["source"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "clarion_batch_seconds",
            "Time to hand one batch to its provider",
            ["channel"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.first_send_seconds = Histogram(
            "clarion_first_send_seconds",
            "From acceptance of an alert to its first send",
            ["channel"],
            registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
        )
        self.outbox = Gauge(
            "clarion_outbox_open",
            "Deliveries claimed and in flight, by channel",
            ["channel"],
            registry=r,
        )
