"""Helpers the tests share: a config of the test's own, a running service, the test token."""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_runner import AppRunner, BaseRunner

from channels.sandbox.broker import free_port
from dispatcher.api.app import build_app, server_options
from dispatcher.service import Service
from dispatcher.settings import Settings, load_settings
from dispatcher.store.database import Database, open_database
from segments.audience import AudienceResolver, resolve_path
from segments.synthetic import PUSH_SINK

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EMAIL_ONLY = {"email.smtp"}
# Where the example campus's push targets point: the sandbox of `make run`.
CAMPUS_PUSH_HOST = urlsplit(PUSH_SINK).netloc


def own_config(folder: Path, *, port: int | None = None) -> dict[str, Any]:
    """The embedded config as a dict that reaches nothing outside this test.

    The store and the incidents key are in `folder`, the test token is the admin's, retries
    are quick, the upstream feeds are off (the embedded ones poll `make run`'s sandbox), and
    the service has a port of its own (free, unless given), which Twilio's callbacks and the
    answer links name. The channels still name the embedded ports: point those a test keeps
    at its own sandbox.
    """
    raw = load_settings().model_dump(mode="json", exclude={"base_dir"})
    raw["store"]["url"] = f"sqlite:///{folder / 'clarion.db'}"
    raw["auth"] = {"token": TOKEN, "override_roles": ["admin"], "tokens": []}
    raw["dispatch"].update({"retry_base_s": 0.05, "retry_max_s": 0.2, "poll_s": 0.05})
    raw["feeds"]["enabled"] = False
    # Generated beside a SQLite store, but in ./var for PostgreSQL: keep it here either way.
    raw["incidents"]["generated_key_path"] = str(folder / "incidents.key")
    port = port or free_port()
    raw["service"].update({"port": port, "public_url": f"http://127.0.0.1:{port}"})
    return raw


def push_at(target: str, sandbox_url: str) -> str:
    """An example campus push target, pointed at this sandbox."""
    return target.replace(CAMPUS_PUSH_HOST, urlsplit(sandbox_url).netloc)


async def point_push_at(db: Database, sandbox_url: str) -> None:
    """Point the stored example campus's push targets at this sandbox."""
    await db.execute(
        "UPDATE people SET push = replace(push, ?, ?)",
        (CAMPUS_PUSH_HOST, urlsplit(sandbox_url).netloc),
    )


class Running:
    """A service behind a real HTTP server, with a client that sends the test token."""

    def __init__(self, service: Service, client: TestClient) -> None:
        self.service = service
        self.client = client

    async def post_alert(self, body: dict[str, Any], **headers: str) -> Any:
        """POST /v1/alerts and return the response."""
        return await self.client.post("/v1/alerts", json=body, headers={**AUTH, **headers})

    async def wait_state(self, alert_id: str, *, timeout: float = 30) -> dict[str, Any]:
        """Poll the alert until it leaves `dispatching`; returns its status document."""
        async with asyncio.timeout(timeout):
            while True:
                resp = await self.client.get(f"/v1/alerts/{alert_id}", headers=AUTH)
                doc: dict[str, Any] = await resp.json()
                if doc["state"] != "dispatching":
                    return doc
                await asyncio.sleep(0.05)


class ServiceServer(TestServer):
    """A test server started as `clarion serve` starts its own (`server_options`: the read
    timeout, and handlers not cancelled when a client leaves, unlike TestServer's default)."""

    def __init__(self, service: Service, *, port: int | None = None) -> None:
        super().__init__(build_app(service), host="127.0.0.1", port=port)
        self._options = server_options(service)

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return AppRunner(self.app, **{**kwargs, **self._options})


async def start_service(settings: Settings, *, port: int | None = None) -> Running:
    """Open the store, build the app and serve it on `port`, or a free one.

    The service's own URL (Twilio's callbacks, answer links) follows the port it is served
    on, unless the test set `public_url` to somewhere else: two nodes started from one
    settings object each get a port and a URL of their own.
    """
    port = port or free_port()
    settings = served_at(settings, port)
    await seed_store(settings)
    service = await Service.open(settings)
    server = ServiceServer(service, port=port)
    client = TestClient(server)
    await client.start_server()
    return Running(service, client)


def served_at(settings: Settings, port: int) -> Settings:
    """The settings of a service served on `port` of the loopback."""
    own = settings.service
    if own.public_url and own.public_url.rstrip("/") != f"http://127.0.0.1:{own.port}":
        return settings.model_copy(update={"service": own.model_copy(update={"port": port})})
    url = f"http://127.0.0.1:{port}"
    service = own.model_copy(update={"port": port, "public_url": url})
    return settings.model_copy(update={"service": service})


# A migrated store holding each directory the tests use, imported once per test process.
_SEEDS: dict[str, Path] = {}
_SEED_DIR: list[Path] = []


async def seed_store(settings: Settings) -> None:
    """Start a new SQLite store as a copy of one with the directory already imported.

    The service would import the same files into the empty store at start; the copy is a
    store of this test's own, made without importing the example campus once per test.
    """
    target = _new_sqlite_store(settings)
    if target is None:
        return
    key = _directory_key(settings)
    seed = _SEEDS.get(key)
    if seed is None:
        if not _SEED_DIR:
            _SEED_DIR.append(Path(tempfile.mkdtemp(prefix="clarion-test-seeds-")))
            atexit.register(shutil.rmtree, _SEED_DIR[0], True)
        seed = _SEED_DIR[0] / f"{len(_SEEDS)}.db"
        db = await open_database(f"sqlite:///{seed}")
        try:
            await AudienceResolver(db, settings.directory, settings.base_dir).load_example()
        finally:
            await db.close()
        _SEEDS[key] = seed
    _copy(seed, target)


def _new_sqlite_store(settings: Settings) -> Path | None:
    """The SQLite file the settings name, if it is not made yet and would get the directory."""
    url = settings.store.url
    if not url.startswith("sqlite:///") or not settings.directory.import_on_start:
        return None
    target = Path(url.removeprefix("sqlite:///"))
    return None if target.exists() else target


def _copy(seed: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(seed, target)


def _directory_key(settings: Settings) -> str:
    """The directory settings and the content of every file they name."""
    directory = settings.directory
    digest = hashlib.sha256(directory.model_dump_json().encode())
    for name in (directory.people, directory.devices, directory.buildings, directory.zones):
        path = resolve_path(settings.base_dir, name)
        digest.update(path.read_bytes() if path.is_file() else b"-")
    return digest.hexdigest()
