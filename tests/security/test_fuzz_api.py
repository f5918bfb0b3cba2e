"""Schemathesis against /openapi.json: generated requests (valid and invalid) to a real server.

No response may be a 5xx; every 4xx carries a JSON body with an `error` key; every response
matches the document (status codes, content types, schemas). The server runs in a thread of
its own, with its own event loop, because Hypothesis drives the requests synchronously.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import checks as sc

from channels.sandbox.server import Sandbox
from dispatcher.api.app import build_app
from dispatcher.service import Service
from dispatcher.settings import Settings, config_dir
from tests.security.conftest import TOKENS, token_entries
from tests.support import TOKEN, own_config

AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEFAULT_REQUESTS = 300
HEAVY_REQUESTS = 1000


@dataclass
class ServedService:
    """A Clarion service and an SMTP sandbox on their own loop in a background thread."""

    settings_for: Callable[[Sandbox], Settings]
    url: str = ""
    service: Service | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _failure: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fuzzed-service", daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self._failure is not None:
            raise RuntimeError("the service did not start") from self._failure

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        box = Sandbox(port=0, smtp_port=0)
        await box.start()
        try:
            settings = self.settings_for(box)
            self.service = await Service.open(settings)
            runner = web.AppRunner(build_app(self.service), access_log=None)
            await runner.setup()
            port = settings.service.port
            await web.TCPSite(runner, "127.0.0.1", port).start()
            self.url = f"http://127.0.0.1:{port}"
            self._ready.set()
            await self._stop.wait()
            await runner.cleanup()
        finally:
            await box.stop()


def fuzz_settings(tmp_path: Path, people: Path) -> Callable[[Sandbox], Settings]:
    """Every route live: e-mail to the sandbox, SMS configured (for its callback route), the
    small campus, every test token, approval on, and no rate limit (fuzzing is one token)."""

    def make(box: Sandbox) -> Settings:
        raw = own_config(tmp_path)
        raw["auth"] = {
            "token": TOKEN, "tokens": token_entries(), "rate_per_second": 0,
            "approval": {"enabled": True, "min_audience": 60},
        }
        raw["directory"]["people"] = str(people)
        raw["channels"]["email.smtp"].update({"port": box.smtp.port, "security": "none"})
        raw["channels"]["sms.twilio"].update({"api_base_url": box.url})
        raw["channels"] = {
            k: v for k, v in raw["channels"].items() if k in ("email.smtp", "sms.twilio")
        }
        raw["base_dir"] = config_dir()
        return Settings.model_validate(raw)

    return make


@pytest.fixture
def served(tmp_path: Path, small_people: Path) -> Iterator[ServedService]:
    """The service on a free port in a thread of its own."""
    server = ServedService(fuzz_settings(tmp_path, small_people))
    server.start()
    yield server
    server.stop()


@sc.check  # type: ignore[untyped-decorator]
def errors_are_json(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx carries a JSON object with an `error` string."""
    if 400 <= response.status_code < 500:
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("error"), str):
            raise AssertionError(f"{response.status_code} without a JSON error: {body!r}")
    return None


CHECKS = [
    sc.not_a_server_error,
    sc.status_code_conformance,
    sc.content_type_conformance,
    sc.response_schema_conformance,
    errors_are_json,
]


def fuzz(served: ServedService, requests_wanted: int) -> Counter[str]:
    """Send `requests_wanted` generated requests; returns how many of each status came back."""
    doc = requests.get(f"{served.url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(doc)
    strategy = st.one_of(
        schema.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE),
        schema.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE),
    )
    statuses: Counter[str] = Counter()
    session = requests.Session()
    tokens = [AUTH, *({"Authorization": f"Bearer {t}"} for t, _ in TOKENS.values()
                      if t != TOKENS["cad"][0])]

    @settings(
        max_examples=requests_wanted,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, who=st.sampled_from(tokens))
    def one(case: Any, who: dict[str, str]) -> None:
        headers = {**(case.headers or {}), **who}
        response = case.call(base_url=served.url, session=session, headers=headers, timeout=10)
        statuses[f"{case.method} {case.path} {response.status_code}"] += 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    one()
    return statuses


def report(statuses: Counter[str], seconds: float) -> str:
    total = sum(statuses.values())
    by_status = Counter(key.rsplit(" ", 1)[1] for key in statuses.elements())
    return f"{total} requests in {seconds:.1f} s; statuses {dict(sorted(by_status.items()))}"


class TestFuzz:
    """The API holds up under generated input and matches its own description."""

    def test_generated_requests(self, served: ServedService) -> None:
        """300 generated requests over every operation: no 5xx, JSON errors, as documented."""
        started = time.monotonic()
        statuses = fuzz(served, DEFAULT_REQUESTS)
        print(report(statuses, time.monotonic() - started))
        assert sum(statuses.values()) >= DEFAULT_REQUESTS
        assert not [k for k in statuses if k.endswith(tuple(f" 5{d:02d}" for d in range(100)))]

    @pytest.mark.heavy
    def test_thousand_generated_requests(self, served: ServedService) -> None:
        """The same with 1,000 requests."""
        started = time.monotonic()
        statuses = fuzz(served, HEAVY_REQUESTS)
        print(report(statuses, time.monotonic() - started))
        assert sum(statuses.values()) >= HEAVY_REQUESTS


class TestDocument:
    """The document describes every route the server has, and only those."""

    async def test_every_route_is_documented(self, secure: Any) -> None:
        """Each (method, path) the router serves is in /openapi.json, and the reverse."""
        app = secure.client.server.app
        served = {
            (route.method.lower(), route.resource.canonical)
            for route in app.router.routes()
            if route.method not in ("HEAD", "*") and route.resource is not None
            # The console's HTML pages are for people, not part of the API it documents.
            and not route.resource.canonical.startswith("/console")
        }
        doc = await (await secure.client.get("/openapi.json")).json()
        documented = {
            (method, path) for path, ops in doc["paths"].items() for method in ops
        }
        assert served - documented == set(), "routes missing from the document"
        assert documented - served == set(), "documented routes the server lacks"
