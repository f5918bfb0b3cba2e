"""`email.smtp` speaks STARTTLS, implicit TLS and AUTH to a real SMTP server."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from channels.email_smtp import SmtpEmail, SmtpSettings
from channels.sandbox.smtp import SmtpServer, SmtpSink
from channels.sandbox.stats import Stats
from dispatcher.domain import (
    AlertContext,
    AlertKind,
    Batch,
    Delivery,
    Message,
    Mode,
    Outcome,
)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A throwaway self-signed certificate for 127.0.0.1."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(  # noqa: S603 - fixed arguments
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",  # noqa: S607
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    yield cert, key


def server_context(cert: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert)
    return ctx


def batch(n: int) -> Batch:
    alert = AlertContext(
        alert_id="a1", kind=AlertKind.EMERGENCY, mode=Mode.LIVE, now_ms=0,
        expires_ms=10**13,
        messages={"en": Message(text="Evacuate now.", subject="Evacuate", body="Evacuate now.")},
    )
    return Batch(alert, tuple(Delivery(i, f"p{i}", f"p{i}@example.edu") for i in range(n)))


async def send(server: SmtpServer, **settings: object) -> list[Outcome]:
    await server.start()
    channel = SmtpEmail(SmtpSettings.model_validate(
        {"host": "127.0.0.1", "port": server.port, "validate_certs": False, **settings}))
    try:
        return [r.outcome for r in await channel.send(batch(3))]
    finally:
        await channel.close()
        await server.stop()


class TestTransportSecurity:
    """TLS and credentials come from the config."""

    async def test_starttls_with_auth(self, certificate: tuple[Path, Path]) -> None:
        """STARTTLS then AUTH PLAIN; mail is accepted."""
        stats = Stats()
        server = SmtpServer(SmtpSink(stats), "127.0.0.1", 0,
                            starttls=server_context(certificate), credentials=("relay", "pw"))
        outcomes = await send(server, security="starttls", username="relay", password="pw")
        assert outcomes == [Outcome.ACCEPTED] * 3
        assert stats.snapshot()["email"]["unique"] == 3

    async def test_implicit_tls(self, certificate: tuple[Path, Path]) -> None:
        """TLS from the first byte (port 465 style)."""
        stats = Stats()
        server = SmtpServer(SmtpSink(stats), "127.0.0.1", 0,
                            implicit_tls=server_context(certificate))
        assert await send(server, security="tls") == [Outcome.ACCEPTED] * 3

    async def test_wrong_password_fails_the_batch_permanently(
        self, certificate: tuple[Path, Path]
    ) -> None:
        """Refused credentials are permanent: nothing is retried and nothing is sent."""
        stats = Stats()
        server = SmtpServer(SmtpSink(stats), "127.0.0.1", 0,
                            starttls=server_context(certificate), credentials=("relay", "pw"))
        from channels.errors import PermanentChannelError

        with pytest.raises(PermanentChannelError, match="credentials"):
            await send(server, security="starttls", username="relay", password="wrong")
        assert stats.snapshot() == {}

    async def test_server_requiring_tls_refuses_plain(self, certificate: tuple[Path, Path]) -> None:
        """Without STARTTLS a relay that requires it refuses; that is a failure, not a hang."""
        server = SmtpServer(SmtpSink(Stats()), "127.0.0.1", 0,
                            starttls=server_context(certificate))
        outcomes = await send(server, security="none")
        assert all(o in (Outcome.FAILED, Outcome.RETRY) for o in outcomes)
