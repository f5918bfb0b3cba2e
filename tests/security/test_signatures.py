"""HMAC-SHA256 request signatures: a signing token's requests are signed, fresh and used once."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from dispatcher.access.auth import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    check_signature,
    first_use,
    sign,
)
from dispatcher.store.database import open_database
from tests.security.conftest import FIRE, HMAC_SECRET, SecureSettings, bearer
from tests.support import Running, start_service

SECRET = "s3cret"


def signed(body: bytes, *, secret: str = HMAC_SECRET, at: int | None = None) -> dict[str, str]:
    """Headers of a request signed now (or at `at`) by the signing caller."""
    ts = int(time.time()) if at is None else at
    return {**bearer("cad"), TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sign(secret, ts, body),
            "Content-Type": "application/json"}


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


class TestScheme:
    """The signature is HMAC-SHA256 over `timestamp.body`, within a window."""

    def test_round_trip(self) -> None:
        """What `sign` makes, `check_signature` accepts, returning a stable replay key."""
        sig = sign(SECRET, 1_700_000_000, b"{}")
        assert sig.startswith("sha256=") and len(sig) == 7 + 64
        key = check_signature(SECRET, "1700000000", sig, b"{}", now_s=1_700_000_100, window_s=300)
        again = check_signature(SECRET, "1700000000", sig, b"{}", now_s=1_700_000_000,
                                window_s=300)
        assert key == again and len(key) == 64

    def test_matches_a_plain_hmac(self) -> None:
        """Senders can compute it with any HMAC library."""
        import hashlib
        import hmac

        expected = hmac.new(SECRET.encode(), b"42.body", hashlib.sha256).hexdigest()
        assert sign(SECRET, 42, b"body") == f"sha256={expected}"

    @pytest.mark.parametrize(
        ("timestamp", "signature", "body", "now", "match"),
        [
            (None, "sha256=" + "0" * 64, b"{}", 100, "must sign"),
            ("100", None, b"{}", 100, "must sign"),
            ("1e3", "sha256=" + "0" * 64, b"{}", 100, "whole seconds"),
            ("-5", "sha256=" + "0" * 64, b"{}", 100, "whole seconds"),
            ("100", "sha256=" + "0" * 64, b"{}", 401, "from the service's clock"),
            ("500", "sha256=" + "0" * 64, b"{}", 100, "from the service's clock"),
            ("100", "md5=abc", b"{}", 100, "64 hex"),
            ("100", sign(SECRET, 100, b"{}"), b'{"x":1}', 100, "does not match"),
            ("100", sign("other", 100, b"{}"), b"{}", 100, "does not match"),
            ("101", sign(SECRET, 100, b"{}"), b"{}", 100, "does not match"),
        ],
    )
    def test_refusals(
        self, timestamp: str | None, signature: str | None, body: bytes, now: int, match: str
    ) -> None:
        """Missing, malformed, stale, future, tampered or foreign signatures are refused."""
        with pytest.raises(SignatureError, match=match):
            check_signature(SECRET, timestamp, signature, body, now_s=now, window_s=300)

    async def test_replay_memory_is_in_the_store(self, tmp_path: Path) -> None:
        """A signature is accepted once, by any node sharing the store, until it expires."""
        url = f"sqlite:///{tmp_path / 'clarion.db'}"
        first, second = await open_database(url), await open_database(url)
        try:
            assert await first_use(first, "k", now_ms=1000, keep_ms=600_000)
            assert not await first_use(second, "k", now_ms=2000, keep_ms=600_000)
            assert await first_use(second, "k", now_ms=602_000, keep_ms=600_000)
        finally:
            await first.close()
            await second.close()


class TestSignedRequests:
    """Through the API: the signing token must sign, and each signature works once."""

    async def test_signed_request_is_accepted(self, secure: Running) -> None:
        """A correctly signed alert is sent."""
        body = encode(FIRE)
        resp = await secure.client.post("/v1/alerts", data=body, headers=signed(body))
        assert resp.status == 202, await resp.text()

    async def test_unsigned_request_is_refused(self, secure: Running) -> None:
        """The bearer token alone is not enough for a token with a secret."""
        resp = await secure.client.post("/v1/alerts", json=FIRE, headers=bearer("cad"))
        assert resp.status == 401
        assert "sign" in (await resp.json())["error"]
        assert await secure.service.db.fetchval("SELECT COUNT(*) FROM alerts") == 0

    async def test_replay_is_refused(self, secure: Running) -> None:
        """The same signed request a second time is a 401, and only one alert exists."""
        body = encode(FIRE)
        headers = signed(body)
        assert (await secure.client.post("/v1/alerts", data=body, headers=headers)).status == 202
        again = await secure.client.post("/v1/alerts", data=body, headers=headers)
        assert again.status == 401
        assert "used before" in (await again.json())["error"]
        assert await secure.service.db.fetchval("SELECT COUNT(*) FROM alerts") == 1
        metrics = await (await secure.client.get("/metrics")).text()
        assert 'clarion_rejected_input_total{source="signature"} 1.0' in metrics

    async def test_tampered_and_stale_requests_are_refused(self, secure: Running) -> None:
        """A body changed after signing, or a timestamp outside the window, sends nothing."""
        body = encode(FIRE)
        headers = signed(body)
        tampered = encode({**FIRE, "audience": "role:staff"})
        resp = await secure.client.post("/v1/alerts", data=tampered, headers=headers)
        assert resp.status == 401
        stale = signed(body, at=int(time.time()) - 301)
        assert (await secure.client.post("/v1/alerts", data=body, headers=stale)).status == 401
        assert await secure.service.db.fetchval("SELECT COUNT(*) FROM alerts") == 0

    async def test_signed_reads(self, secure: Running) -> None:
        """A GET is signed over an empty body."""
        resp = await secure.client.get("/v1/approvals", headers=signed(b""))
        assert resp.status == 200
        assert (await secure.client.get("/v1/approvals", headers=bearer("cad"))).status == 401

    async def test_other_tokens_need_no_signature(self, secure: Running) -> None:
        """Signing is per token: the others go on with the bearer token alone."""
        resp = await secure.client.post("/v1/alerts", json=FIRE, headers=bearer("alice"))
        assert resp.status == 202

    async def test_secret_from_environment(
        self, secure_settings: SecureSettings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`hmac_secret_env` names the variable holding the secret."""
        monkeypatch.setenv("CAD_HMAC", "from-the-environment")
        settings = secure_settings(
            token_extra={"cad": {"hmac_secret": None, "hmac_secret_env": "CAD_HMAC"}}
        )
        run = await start_service(settings)
        try:
            body = encode(FIRE)
            ok = await run.client.post("/v1/alerts", data=body,
                                       headers=signed(body, secret="from-the-environment"))
            assert ok.status == 202, await ok.text()
        finally:
            await run.client.close()


class TestSignedCap:
    """A signing sender may relay CAP documents too."""

    async def _cap_document(self, run: Running) -> bytes:
        resp = await run.client.post("/v1/alerts", json=FIRE, headers=bearer("alice"))
        alert_id = (await resp.json())["id"]
        return await (await run.client.get(f"/v1/alerts/{alert_id}/cap",
                                           headers=bearer("alice"))).read()

    async def test_unsigned_token_relays_cap(self, secure: Running) -> None:
        """The control: the same document from a token that need not sign."""
        document = await self._cap_document(secure)
        resp = await secure.client.post(
            "/v1/alerts", data=document,
            headers={**bearer("bob"), "Content-Type": "application/cap+xml"},
        )
        assert resp.status == 202, await resp.text()

    async def test_signed_cap(self, secure: Running) -> None:
        """A signed CAP document is relayed."""
        document = await self._cap_document(secure)
        headers = {**signed(document), "Content-Type": "application/cap+xml"}
        resp = await secure.client.post("/v1/alerts", data=document, headers=headers)
        assert resp.status == 202, await resp.text()
