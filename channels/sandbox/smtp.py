"""An SMTP relay stand-in (aiosmtpd) that records mail and can refuse recipients on cue."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections import defaultdict, deque
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from channels.sandbox.stats import Stats

ALERT_HEADER = "X-Clarion-Alert"


class SmtpSink:
    """aiosmtpd handler: per-recipient scripted replies, then every accepted copy counted."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self._script: dict[str, deque[str]] = defaultdict(deque)
        self.transactions = 0
        self.rcpt_commands = 0

    def script(self, address: str, *replies: str) -> None:
        """Answer the next RCPT TO for `address` with these replies in turn (then 250)."""
        self._script[address.lower()].extend(replies)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.rcpt_commands += 1
        queued = self._script.get(address.lower())
        if queued:
            reply = queued.popleft()
            if not reply.startswith("250"):
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        msg = email.message_from_bytes(data, policy=email.policy.default)
        alert_id = str(msg.get(ALERT_HEADER, ""))
        subject = str(msg.get("Subject", ""))
        body = msg.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        self.transactions += 1
        for rcpt in envelope.rcpt_tos:
            self.stats.record("email", alert_id, rcpt.lower(), text, subject=subject)
        return "250 Message accepted"


class SmtpServer:
    """The sink served on a TCP port until stopped."""

    def __init__(self, sink: SmtpSink, host: str, port: int) -> None:
        self.sink = sink
        self.host = host
        self.port = port
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        """Listen (port 0 picks a free one; `port` then holds it)."""
        loop = asyncio.get_running_loop()

        def factory() -> SMTP:
            return SMTP(self.sink, hostname="sandbox.clarion.test", ident="Clarion sandbox")

        self._server = await loop.create_server(factory, self.host, self.port)
        sock: Any = self._server.sockets[0]
        self.port = sock.getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close sessions."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
