"""An SMTP relay stand-in (aiosmtpd) that records mail and can refuse recipients on cue."""

from __future__ import annotations

import asyncio
import email
import email.policy
import hmac
import ssl
from collections import defaultdict, deque
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

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
    """The sink served on a TCP port until stopped, optionally with TLS and AUTH."""

    def __init__(
        self,
        sink: SmtpSink,
        host: str,
        port: int,
        *,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.sink = sink
        self.host = host
        self.port = port
        self._starttls = starttls
        self._implicit_tls = implicit_tls
        self._credentials = credentials
        self._server: asyncio.base_events.Server | None = None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if self._credentials is None or not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = self._credentials
        ok = hmac.compare_digest(data.login, user.encode()) and hmac.compare_digest(
            data.password, password.encode()
        )
        return AuthResult(success=ok, handled=False)

    async def start(self) -> None:
        """Listen (port 0 picks a free one; `port` then holds it)."""
        loop = asyncio.get_running_loop()

        def factory() -> SMTP:
            return SMTP(
                self.sink,
                hostname="sandbox.clarion.test",
                ident="Clarion sandbox",
                tls_context=self._starttls,
                require_starttls=self._starttls is not None,
                authenticator=self._authenticate if self._credentials else None,
                auth_required=self._credentials is not None,
                auth_require_tls=self._starttls is not None or self._implicit_tls is not None,
            )

        self._server = await loop.create_server(
            factory, self.host, self.port, ssl=self._implicit_tls
        )
        sock: Any = self._server.sockets[0]
        self.port = sock.getsockname()[1]

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
