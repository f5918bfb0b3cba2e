"""Telnyx's API v2 as documented, over one aiohttp session: what `sms.telnyx` sends and fetches,
and the Ed25519 check of Telnyx's signed webhooks.

A request goes to `{base}/v2/{resource}` with `Authorization: Bearer {API key}` and, for a
POST, a JSON body of Telnyx's field names. A 2xx answer is `{"data": {...}}`; any other is
`{"errors": [{"code", "title", "detail", ...}]}`, raised as `TelnyxError` with the first
error's code and the response's own Retry-After. The `detail` is never kept: it quotes the
numbers.

Webhooks carry `telnyx-signature-ed25519` (base64 of a 64-byte Ed25519 signature) and
`telnyx-timestamp` (Unix seconds); the signed message is `"{timestamp}|{raw body}"`, checked
with the account's public key (base64 of the 32-byte raw key), and refused outside a window
around now so a captured request cannot be replayed later.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from typing import Any, Final

import aiohttp
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from yarl import URL

TELNYX_API: Final = "https://api.telnyx.com"
SIGNATURE_HEADER: Final = "telnyx-signature-ed25519"
TIMESTAMP_HEADER: Final = "telnyx-timestamp"
# Telnyx's own libraries accept a webhook signed up to five minutes either side of now.
REPLAY_WINDOW_S: Final = 300


class TelnyxError(Exception):
    """Telnyx answered with an error: its HTTP status, first error code and Retry-After (s)."""

    def __init__(self, status: int, code: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"telnyx {code or '?'}, HTTP {status}")
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s


class TelnyxReplyUnreadable(aiohttp.ClientError):
    """A 2xx answer whose body is not `{"data": {...}}`."""


class TelnyxRest:
    """One API key's requests to Telnyx API v2; the session opens on first use."""

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float) -> None:
        self._base = URL(base_url.rstrip("/")) / "v2"
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def open(self) -> None:
        """Open the session now (it must be opened inside the running event loop)."""
        self._http()

    async def close(self) -> None:
        """Close the session; the next request opens another."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def create(self, resource: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """POST `/v2/{resource}` with a JSON body: the new resource's `data`."""
        return await self._request("POST", self._base / resource, body)

    async def fetch(self, resource: str, ident: str) -> Mapping[str, Any]:
        """GET `/v2/{resource}/{id}`: one resource's `data` as it stands now."""
        return await self._request("GET", self._base / resource / ident, None)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self._session

    async def _request(
        self, method: str, url: URL, body: Mapping[str, Any] | None
    ) -> Mapping[str, Any]:
        # A redirect would carry the key, and the message, somewhere else: not followed.
        async with self._http().request(
            method, url, json=body, allow_redirects=False
        ) as response:
            raw = await response.read()
            if response.status >= 300:
                raise TelnyxError(
                    response.status,
                    error_code(raw),
                    retry_after_seconds(response.headers.get("Retry-After")),
                )
        found = _json_object(raw)
        data = None if found is None else found.get("data")
        if not isinstance(data, dict):
            raise TelnyxReplyUnreadable(f"HTTP {response.status} without a data object")
        return data


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After in seconds; None when absent or not a number of seconds."""
    try:
        seconds = float(value or "")
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def error_code(raw: bytes) -> str:
    """The first error's code of Telnyx's error body ("" when there is none)."""
    found = _json_object(raw)
    errors = None if found is None else found.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code = errors[0].get("code")
        if isinstance(code, str | int) and not isinstance(code, bool):
            text = str(code)
            return text if text.isascii() and text.isdigit() and len(text) <= 8 else ""
    return ""


def signature_valid(
    public_key: str,
    raw_body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    now_s: float,
    window_s: float = REPLAY_WINDOW_S,
) -> bool:
    """True when the Ed25519 signature over `"{timestamp}|{raw body}"` is the account's and
    the timestamp is within `window_s` of now."""
    if not public_key or not signature or not timestamp:
        return False
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        return False
    if abs(now_s - int(timestamp)) > window_s:
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
        signed = base64.b64decode(signature, validate=True)
        key.verify(signed, timestamp.encode("ascii") + b"|" + raw_body)
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        found = json.loads(raw)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None
