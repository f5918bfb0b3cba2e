"""Telling approvers that an alert waits: one e-mail, through the e-mail channel's SMTP relay.

The store calls `held` after it commits a new held request; the mail goes out beside the
request (the 202 never waits for it), and a relay that fails is logged, never retried: the
console's home page shows every approver the waiting count as well.
"""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Callable, Sequence
from email.message import EmailMessage

import aiosmtplib
import structlog

from channels.email_smtp import Security, SmtpSettings
from dispatcher.access.credentials import reveal
from dispatcher.domain import ChannelKind
from dispatcher.store.approvals import ApprovalRecord

log = structlog.get_logger("clarion.approvals")

# The header that marks the notice (it is not an alert: it carries no alert id).
NOTICE_HEADER = "X-Clarion-Approval"
LOUD = {ChannelKind.SIREN.value: "outdoor sirens", ChannelKind.PA.value: "PA speakers"}


class ApprovalNotice:
    """Mails `recipients` about each new held request, with its channels, count and link."""

    def __init__(
        self,
        smtp: SmtpSettings | None,
        recipients: Sequence[str],
        *,
        console_url: str,
        channels_of: Callable[[ApprovalRecord], list[str]],
    ) -> None:
        self._smtp = smtp
        self._recipients = tuple(recipients)
        self._console_url = console_url.rstrip("/")
        self._channels_of = channels_of
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        """Whether there is a relay and somebody to tell."""
        return self._smtp is not None and bool(self._recipients)

    def held(self, record: ApprovalRecord) -> None:
        """A new request waits: mail the approvers beside the caller (quick, never raises)."""
        if not self.enabled:
            return
        task = asyncio.get_running_loop().create_task(self._send(record))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def message(self, record: ApprovalRecord) -> EmailMessage:
        """The notice: what the alert says, how many people, which channels, where to decide."""
        assert self._smtp is not None
        request = record.request
        channels = self._channels_of(record)
        people = int(record.audience_counts.get("total", 0))
        loud = [LOUD[c] for c in channels if c in LOUD]
        link = f"{self._console_url}/console/approvals/{record.id}"
        lines = [
            f"A {request.mode.value} {request.kind.value.replace('_', ' ')} alert waits for a "
            "second person's approval. Nothing is sent until someone approves it.",
            "",
            f"Asked by: {record.requested_by}",
            f"People: {people:,}",
            f"Channels: {', '.join(channels) or 'none'}",
        ]
        if loud:
            lines.append(f"If approved, {' and '.join(loud)} will sound.")
        lines += [
            "",
            request.text or f"(template {request.template})",
            "",
            f"Approve or reject it: {link}",
        ]
        msg = EmailMessage()
        msg["From"] = self._smtp.sender
        msg["To"] = ", ".join(self._recipients)
        msg["Subject"] = f"Approval needed: alert to {people:,} people"
        msg["Date"] = email.utils.formatdate(usegmt=True)
        msg[NOTICE_HEADER] = record.id
        msg.set_content("\n".join(lines))
        return msg

    async def _send(self, record: ApprovalRecord) -> None:
        smtp = self._smtp
        assert smtp is not None
        try:
            await aiosmtplib.send(
                self.message(record),
                hostname=smtp.host,
                port=smtp.port,
                username=smtp.username,
                password=reveal(smtp.password) or None,
                timeout=smtp.timeout_s,
                use_tls=smtp.security is Security.TLS,
                start_tls=smtp.security is Security.STARTTLS,
                validate_certs=smtp.validate_certs,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            log.warning("approval.notice_failed", approval_id=record.id,
                        error=type(exc).__name__)
            return
        log.info("approval.notice_sent", approval_id=record.id,
                 recipients=len(self._recipients))

    async def close(self) -> None:
        """Let the notices on their way finish (each is bounded by the relay's timeout)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
