"""`email.smtp`: e-mail through an SMTP relay, many recipients per transaction, a receipt each."""

from __future__ import annotations

import asyncio
import email.utils
from collections import defaultdict
from collections.abc import Sequence
from email.message import EmailMessage
from enum import StrEnum
from typing import ClassVar

import aiosmtplib
import structlog
from pydantic import Field, SecretStr

from channels.base import GAVE_WAY, Channel, ChannelSettings
from channels.errors import PermanentChannelError, is_transient_smtp
from channels.pacing import GiveWay, UrgentSlots
from dispatcher.access.credentials import reveal
from dispatcher.domain import Batch, ChannelKind, Delivery, Outcome, Receipt
from dispatcher.observability import redact_text

log = structlog.get_logger("clarion.channel.email")

ALERT_HEADER = "X-Clarion-Alert"


class Security(StrEnum):
    """How the connection to the relay is protected."""

    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


class SmtpSettings(ChannelSettings):
    """Relay address, credentials and how mail is grouped."""

    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = "alerts@example.edu"
    security: Security = Security.STARTTLS
    username: str | None = None
    password: SecretStr | None = None
    validate_certs: bool = True
    pool_size: int = Field(default=4, ge=1, le=64)
    recipients_per_message: int = Field(
        default=50, ge=1, le=1000, description="envelope recipients per SMTP transaction"
    )


class SmtpEmail(Channel):
    """Sends each batch as few SMTP transactions as the relay allows, receipts per RCPT reply."""

    name: ClassVar[str] = "email.smtp"
    kind: ClassVar[ChannelKind] = ChannelKind.EMAIL
    settings_model: ClassVar[type[ChannelSettings]] = SmtpSettings
    settings: SmtpSettings

    def __init__(self, settings: ChannelSettings) -> None:
        super().__init__(settings)
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self._slots = UrgentSlots(self.settings.pool_size, self.right_of_way)

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            username=s.username,
            password=reveal(s.password) or None,
            timeout=s.timeout_s,
            use_tls=s.security is Security.TLS,
            start_tls=s.security is Security.STARTTLS,
            validate_certs=s.validate_certs,
        )

    async def _acquire(self, rank: int) -> aiosmtplib.SMTP:
        await self._slots.acquire(rank)
        while not self._idle.empty():
            smtp = self._idle.get_nowait()
            if smtp.is_connected:
                return smtp
        smtp = self._client()
        try:
            await smtp.connect()
        except BaseException:
            self._slots.release()
            raise
        return smtp

    def _release(self, smtp: aiosmtplib.SMTP, *, healthy: bool) -> None:
        if healthy and smtp.is_connected:
            self._idle.put_nowait(smtp)
        else:
            smtp.close()
        self._slots.release()

    async def close(self) -> None:
        """Say QUIT on every pooled connection."""
        while not self._idle.empty():
            smtp = self._idle.get_nowait()
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()

    async def transmit(self, batch: Batch, /) -> Sequence[Receipt]:
        """One transaction per language and chunk of recipients, all in parallel."""
        groups: dict[str, list[Delivery]] = defaultdict(list)
        for d in batch.deliveries:
            groups[d.language].append(d)
        size = self.settings.recipients_per_message
        if any(m.has_link for m in batch.alert.messages.values()):
            # Each person's answer link is theirs alone: one message per recipient.
            size = 1
        chunks = [
            (lang, ds[i : i + size]) for lang, ds in groups.items() for i in range(0, len(ds), size)
        ]
        results = await asyncio.gather(*(self._send_chunk(batch, lang, ds) for lang, ds in chunks))
        by_id = {r.delivery_id: r for rs in results for r in rs}
        return [by_id[d.id] for d in batch.deliveries]

    def _message(self, batch: Batch, language: str, link: str = "") -> EmailMessage:
        rendered = batch.alert.message(language).with_link(link)
        msg = EmailMessage()
        msg["From"] = self.settings.sender
        msg["To"] = "undisclosed-recipients:;"
        msg["Subject"] = rendered.subject or rendered.title or rendered.text[:78]
        msg["Date"] = email.utils.formatdate(batch.alert.now_ms / 1000, usegmt=True)
        msg["Message-ID"] = email.utils.make_msgid(
            idstring=batch.alert.alert_id, domain=self.settings.sender.rsplit("@", 1)[-1].strip(">")
        )
        msg[ALERT_HEADER] = batch.alert.alert_id
        msg["X-Clarion-Mode"] = batch.alert.mode.value
        msg["Content-Language"] = language
        if batch.alert.drill:
            msg["X-Clarion-Drill"] = "yes"
        msg.set_content(rendered.body or rendered.text)
        if rendered.html:
            msg.add_alternative(rendered.html, subtype="html")
        return msg

    async def _send_chunk(
        self, batch: Batch, language: str, deliveries: list[Delivery]
    ) -> list[Receipt]:
        msg = self._message(batch, language, deliveries[0].link if len(deliveries) == 1 else "")
        addresses = sorted({d.address for d in deliveries})
        try:
            smtp = await self._acquire(batch.alert.rank)
        except GiveWay:
            return _all(deliveries, Outcome.DEFERRED, GAVE_WAY)
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise PermanentChannelError(f"relay refused the credentials: {exc.code}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return _all(deliveries, Outcome.RETRY, f"relay unreachable: {type(exc).__name__}")
        healthy = True
        try:
            refused, _reply = await smtp.send_message(
                msg, sender=_envelope_sender(self.settings.sender), recipients=addresses
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = {
                r.recipient: aiosmtplib.SMTPResponse(r.code, r.message) for r in exc.recipients
            }
        except aiosmtplib.SMTPResponseException as exc:
            healthy = not isinstance(exc, aiosmtplib.SMTPServerDisconnected)
            outcome = Outcome.RETRY if is_transient_smtp(exc.code) else Outcome.FAILED
            return _all(deliveries, outcome, f"{exc.code} {redact_text(exc.message)}")
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            healthy = False
            return _all(deliveries, Outcome.RETRY, f"relay connection lost: {type(exc).__name__}")
        finally:
            self._release(smtp, healthy=healthy)
        receipts = []
        for d in deliveries:
            reply = refused.get(d.address)
            if reply is None:
                receipts.append(Receipt(d.id, Outcome.ACCEPTED, "250 accepted by relay"))
                continue
            outcome = Outcome.RETRY if is_transient_smtp(reply.code) else Outcome.FAILED
            receipts.append(Receipt(d.id, outcome, f"{reply.code} {redact_text(reply.message)}"))
        return receipts


def _envelope_sender(header: str) -> str:
    return email.utils.parseaddr(header)[1] or header


def _all(deliveries: list[Delivery], outcome: Outcome, detail: str) -> list[Receipt]:
    return [Receipt(d.id, outcome, detail) for d in deliveries]
