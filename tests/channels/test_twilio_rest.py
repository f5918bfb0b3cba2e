"""Twilio's REST API on the wire: paths, Basic auth, form bodies, error JSON and Retry-After."""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import pytest
from aiohttp import web

from channels.twilio_rest import (
    TwilioError,
    TwilioReplyUnreadable,
    TwilioRest,
    retry_after_seconds,
)

SID = "AC" + "1" * 32
TOKEN = "t0ken:with colon"


@dataclass
class Seen:
    """One request as the server got it."""

    method: str
    path: str
    authorization: str
    content_type: str
    body: bytes


@dataclass
class Recorder:
    """Keeps each request; answers the scripted responses in turn, then a small resource."""

    seen: list[Seen] = field(default_factory=list)
    answers: deque[web.Response] = field(default_factory=deque)

    async def handle(self, request: web.Request) -> web.Response:
        """Record, then answer."""
        self.seen.append(
            Seen(
                request.method,
                request.raw_path,
                request.headers.get("Authorization", ""),
                request.headers.get("Content-Type", ""),
                await request.read(),
            )
        )
        if self.answers:
            return self.answers.popleft()
        return web.json_response({"sid": "SM1", "status": "queued"}, status=201)


@pytest.fixture
async def api() -> AsyncIterator[tuple[Recorder, TwilioRest]]:
    recorder = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    rest = TwilioRest(
        f"http://127.0.0.1:{runner.addresses[0][1]}/", SID, TOKEN, timeout_s=5.0
    )
    yield recorder, rest
    await rest.close()
    await runner.cleanup()


def twilio_error(status: int, code: int, **headers: str) -> web.Response:
    return web.json_response(
        {"code": code, "message": "quotes +15555550100", "more_info": "", "status": status},
        status=status,
        headers=headers,
    )


class TestRequests:
    """Requests as Twilio documents them."""

    async def test_create_posts_a_form_with_basic_auth(
        self, api: tuple[Recorder, TwilioRest]
    ) -> None:
        """POST Accounts/{sid}/Messages.json, the form in order (repeats kept), Basic auth."""
        recorder, rest = api
        form = [
            ("To", "+15555550100"),
            ("Body", "Fire & smoke: leave now +100% — évacuez"),
            ("StatusCallbackEvent", "ringing"),
            ("StatusCallbackEvent", "completed"),
        ]
        resource = await rest.create("Messages", form)
        assert resource == {"sid": "SM1", "status": "queued"}
        (seen,) = recorder.seen
        assert (seen.method, seen.path) == ("POST", f"/2010-04-01/Accounts/{SID}/Messages.json")
        assert seen.content_type == "application/x-www-form-urlencoded"
        assert parse_qsl(seen.body.decode("ascii"), strict_parsing=True) == form
        scheme, _, encoded = seen.authorization.partition(" ")
        assert (scheme, base64.b64decode(encoded).decode()) == ("Basic", f"{SID}:{TOKEN}")

    async def test_fetch_and_update_by_sid(self, api: tuple[Recorder, TwilioRest]) -> None:
        """GET and POST Calls/{sid}.json; the GET has no body."""
        recorder, rest = api
        recorder.answers.append(web.json_response({"sid": "CA9", "status": "ringing"}))
        assert (await rest.fetch("Calls", "CA9"))["status"] == "ringing"
        await rest.update("Calls", "CA9", [("Status", "canceled")])
        fetched, updated = recorder.seen
        path = f"/2010-04-01/Accounts/{SID}/Calls/CA9.json"
        assert (fetched.method, fetched.path, fetched.body) == ("GET", path, b"")
        assert (updated.method, updated.path, updated.body) == ("POST", path, b"Status=canceled")


class TestAnswers:
    """Error answers become `TwilioError` with the code and the response's Retry-After."""

    async def test_error_json_gives_the_code(self, api: tuple[Recorder, TwilioRest]) -> None:
        """A 400 with Twilio's error body: its code, no Retry-After, no message kept."""
        recorder, rest = api
        recorder.answers.append(twilio_error(400, 21211))
        with pytest.raises(TwilioError) as raised:
            await rest.create("Messages", [("To", "+15555550100")])
        assert (raised.value.status, raised.value.code) == (400, 21211)
        assert raised.value.retry_after_s is None
        assert "5555550100" not in str(raised.value)

    async def test_429_carries_retry_after(self, api: tuple[Recorder, TwilioRest]) -> None:
        """Retry-After in seconds is read from the response itself."""
        recorder, rest = api
        recorder.answers.append(twilio_error(429, 20429, **{"Retry-After": "12"}))
        with pytest.raises(TwilioError) as raised:
            await rest.create("Calls", [("To", "+15555550100")])
        assert (raised.value.status, raised.value.code, raised.value.retry_after_s) == (
            429, 20429, 12.0,
        )

    async def test_error_without_json(self, api: tuple[Recorder, TwilioRest]) -> None:
        """A proxy's HTML 503: the status, and no code."""
        recorder, rest = api
        recorder.answers.append(web.Response(status=503, text="<html>busy</html>"))
        with pytest.raises(TwilioError) as raised:
            await rest.fetch("Messages", "SM1")
        assert (raised.value.status, raised.value.code) == (503, None)

    async def test_redirect_is_not_followed(self, api: tuple[Recorder, TwilioRest]) -> None:
        """A redirect would carry the credentials elsewhere: it is an error, sent once."""
        recorder, rest = api
        recorder.answers.append(web.Response(status=307, headers={"Location": "/elsewhere"}))
        with pytest.raises(TwilioError) as raised:
            await rest.create("Messages", [("To", "+15555550100")])
        assert raised.value.status == 307
        assert len(recorder.seen) == 1

    async def test_success_without_a_resource(self, api: tuple[Recorder, TwilioRest]) -> None:
        """A 2xx whose body is not a JSON object is a client error, not a resource."""
        recorder, rest = api
        recorder.answers.append(web.Response(status=201, text="[]"))
        with pytest.raises(TwilioReplyUnreadable):
            await rest.create("Messages", [("To", "+15555550100")])

    @pytest.mark.parametrize(
        ("value", "seconds"),
        [("7", 7.0), ("0.5", 0.5), (None, None), ("", None), ("-1", None), ("nan", None),
         ("Wed, 21 Oct 2026 07:28:00 GMT", None)],
    )
    def test_retry_after_seconds(self, value: str | None, seconds: float | None) -> None:
        """Seconds are kept; absent, negative, not finite or an HTTP-date are not."""
        assert retry_after_seconds(value) == seconds
