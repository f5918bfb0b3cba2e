"""Nothing private in logs: a full alert's log output carries no address or phone number."""

from __future__ import annotations

import io
import logging
import re

from channels.sandbox.server import Sandbox
from dispatcher.observability import configure_logging, redact, redact_text
from tests.support import Running

PHONE = re.compile(r"\+\d{10,15}|\(?\b\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


class TestLogs:
    """Logs carry recipients only as hashes."""

    async def test_alert_run_logs_no_contact_details(
        self, running: Running, sandbox: Sandbox
    ) -> None:
        """Every log line of an alert (with some refusals) is free of addresses and numbers."""
        stream = io.StringIO()
        configure_logging("debug")
        handler = logging.getLogger().handlers[0]
        handler.stream = stream  # type: ignore[attr-defined]
        try:
            addresses = await running.service.db.fetchall(
                "SELECT email FROM people ORDER BY id LIMIT 3"
            )
            sandbox.smtp.sink.script(addresses[0]["email"], "550 5.1.1 <x@example.edu> unknown")
            sandbox.smtp.sink.script(addresses[1]["email"], "451 4.2.0 busy")
            resp = await running.post_alert(
                {
                    "kind": "emergency",
                    "channels": ["email"],
                    "text": "Police activity near Adams Street. Avoid the area.",
                }
            )
            await running.wait_state((await resp.json())["id"])
        finally:
            logging.getLogger().handlers.clear()
            logging.getLogger().setLevel(logging.WARNING)
        out = stream.getvalue()
        assert "delivery.failed" in out and "delivery.retry_scheduled" in out
        assert not EMAIL.findall(out), EMAIL.findall(out)[:3]
        assert not PHONE.findall(out), PHONE.findall(out)[:3]

    def test_redaction(self) -> None:
        """Addresses and numbers in free text are masked; times and years are not."""
        assert redact_text("call (555) 867-5309") == "call [phone]"
        assert redact_text("to +12025550143 failed") == "to [phone] failed"
        assert redact_text("mail a.b@example.edu now") == "mail [email] now"
        assert redact_text("at 9 PM on 2026-11-28") == "at 9 PM on 2026-11-28"

    def test_digits_inside_words_are_not_numbers(self) -> None:
        """Provider SIDs and decimal clock readings keep their digits; numbers beside do not."""
        sid = "SM0123456789abcdef0123456789abcdef"
        assert redact_text(f"sid {sid} to 202-555-0143") == f"sid {sid} to [phone]"
        assert redact_text("lease until 1764685913.125") == "lease until 1764685913.125"
        assert redact_text("x+12025550143 and 2025550143") == "x[phone] and [phone]"

    def test_identifier_fields_keep_their_digits(self) -> None:
        """Ids and clock fields keep their digits; an e-mail in them is still masked."""
        event = redact(None, "info", {
            "alert_id": "5558675309", "batch_ids": ["2025550143"], "sent_at": "2025550143",
            "recipient": "(555) 867-5309", "detail": {"message_sid": "12025550143",
                                                    "body": "call 202-555-0143"},
            "person_id": "a.b@example.edu",
        })
        assert event["alert_id"] == "5558675309"
        assert event["batch_ids"] == ["2025550143"]
        assert event["sent_at"] == "2025550143"
        assert event["recipient"] == "[phone]"
        assert event["detail"] == {"message_sid": "12025550143", "body": "call [phone]"}
        assert event["person_id"] == "[email]"
