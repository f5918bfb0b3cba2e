"""Twilio's REST API as documented, over one aiohttp session: what `sms.twilio` and
`voice.twilio` send and fetch.

Each request goes to `{base}/2010-04-01/Accounts/{AccountSid}/{Resource}.json` (or
`{Resource}/{Sid}.json`) with HTTP Basic auth (the account SID and auth token) and, for a
POST, an `application/x-www-form-urlencoded` body of Twilio's parameter names. A 2xx answer is
the resource as JSON; any other is Twilio's error JSON (`code`, `message`, `more_info`,
`status`), raised as `TwilioError` with the code and the response's own Retry-After. The
error's `message` is never kept: it quotes the destination number.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp
from yarl import URL

API_VERSION: Final = "2010-04-01"
TWILIO_API: Final = "https://api.twilio.com"
# A form body: parameter names and values, in order; a name may repeat (StatusCallbackEvent).
Form = Sequence[tuple[str, str]]
_FORM: Final = {"Content-Type": "application/x-www-form-urlencoded"}


class TwilioError(Exception):
    """Twilio answered with an error: its HTTP status, error code and Retry-After (s)."""

    def __init__(self, status: int, code: int | None, retry_after_s: float | None = None) -> None:
        super().__init__(f"twilio {code}, HTTP {status}")
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s


class TwilioReplyUnreadable(aiohttp.ClientError):
    """A 2xx answer whose body is not a JSON object."""


class TwilioRest:
    """One account's requests to Twilio's REST API; the session opens on first use."""

    def __init__(
        self, base_url: str, account_sid: str, auth_token: str, *, timeout_s: float
    ) -> None:
        self._account = URL(base_url.rstrip("/")) / API_VERSION / "Accounts" / account_sid
        pair = f"{account_sid}:{auth_token}".encode()
        self._headers = {
            "Authorization": "Basic " + base64.b64encode(pair).decode("ascii"),
            "Accept": "application/json",
        }
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

    async def create(self, resource: str, form: Form) -> Mapping[str, Any]:
        """POST `{resource}.json`: a new Message or Call."""
        return await self._request("POST", self._account / f"{resource}.json", form)

    async def update(self, resource: str, sid: str, form: Form) -> Mapping[str, Any]:
        """POST `{resource}/{sid}.json`: change a resource (a call's Status=canceled)."""
        return await self._request("POST", self._account / resource / f"{sid}.json", form)

    async def fetch(self, resource: str, sid: str) -> Mapping[str, Any]:
        """GET `{resource}/{sid}.json`: one resource as it stands now."""
        return await self._request("GET", self._account / resource / f"{sid}.json", None)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self._session

    async def _request(self, method: str, url: URL, form: Form | None) -> Mapping[str, Any]:
        body = None if form is None else urlencode(form)
        headers = None if form is None else _FORM
        # A redirect would carry the credentials, and a POST, somewhere else: not followed.
        async with self._http().request(
            method, url, data=body, headers=headers, allow_redirects=False
        ) as response:
            raw = await response.read()
            if response.status >= 300:
                raise TwilioError(
                    response.status,
                    _error_code(raw),
                    retry_after_seconds(response.headers.get("Retry-After")),
                )
        found = _json_object(raw)
        if found is None:
            raise TwilioReplyUnreadable(f"HTTP {response.status} without a JSON resource")
        return found


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After in seconds; None when absent or in the HTTP-date form (Twilio sends
    seconds, and the backoff covers the rest)."""
    try:
        seconds = float(value or "")
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _error_code(raw: bytes) -> int | None:
    found = _json_object(raw)
    code = None if found is None else found.get("code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        found = json.loads(raw)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None
