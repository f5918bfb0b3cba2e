"""Shared fixtures: the sandbox on free ports, settings pointing at it, a running service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis.configuration import set_hypothesis_home_dir

from channels.sandbox.server import Sandbox
from dispatcher.settings import Settings, config_dir
from tests.hermetic import guard
from tests.support import EMAIL_ONLY, Running, own_config, point_push_at, start_service


@pytest.fixture(autouse=True)
def hermetic() -> Iterator[None]:
    """Fails a test that reached a fixed port or wrote a file in the repository."""
    watch = guard()
    watch.take()
    yield
    seen = watch.take()
    if seen:
        pytest.fail("not hermetic: " + "; ".join(sorted(set(seen))), pytrace=False)


@pytest.fixture(autouse=True, scope="session")
def hypothesis_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hypothesis keeps its files in the session's folder, not in the working directory."""
    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    yield
    set_hypothesis_home_dir(None)


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """The provider sandbox in this process, on free ports."""
    box = Sandbox(port=0, smtp_port=0)
    await box.start()
    yield box
    await box.stop()


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path, sandbox: Sandbox) -> SettingsFactory:
    """The test's own settings (`own_config`): store in tmp_path, e-mail at the sandbox.

    `channels` adds channels from the embedded config (patched with the given keys);
    other keyword arguments patch top-level sections.
    """

    def make(
        channels: dict[str, dict[str, Any]] | None = None, **sections: dict[str, Any]
    ) -> Settings:
        raw = own_config(tmp_path)
        email = dict(raw["channels"].get("email.smtp", {}))
        email.update({"host": "127.0.0.1", "port": sandbox.smtp.port, "security": "none"})
        raw["channels"]["email.smtp"] = email
        patches = channels or {}
        wanted = set(patches) | EMAIL_ONLY if channels is not None else EMAIL_ONLY
        raw["channels"] = {k: v for k, v in raw["channels"].items() if k in wanted}
        for name, patch in patches.items():
            raw["channels"].setdefault(name, {}).update(patch)
        for key, value in sections.items():
            raw.setdefault(key, {}).update(value)
        raw["base_dir"] = config_dir()
        return Settings.model_validate(raw)

    return make


@pytest_asyncio.fixture
async def running(make_settings: SettingsFactory) -> AsyncIterator[Running]:
    """The embedded default service (e-mail only) against the sandbox."""
    run = await start_service(make_settings())
    yield run
    await run.client.close()


class Stack:
    """The whole sandbox (SMTP, Twilio, push, mosquitto and simulated devices) and a service
    sending on all six channels to it."""

    def __init__(self, sandbox: Sandbox, plugins: dict[str, Any], run: Running) -> None:
        self.sandbox = sandbox
        self.plugins = plugins
        self.run = run


DEVICE_CHANNELS = ("siren.mqtt", "signage.mqtt", "pa.mqtt", "desktop.mqtt")
ALL_CHANNELS = ("email.smtp", "sms.twilio", "push.apprise", *DEVICE_CHANNELS)


@pytest_asyncio.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """Every channel end to end against `clarion sandbox` running in this process."""
    import argparse

    from channels.sandbox import cli as sandbox_cli
    from channels.sandbox.broker import free_port

    parser = argparse.ArgumentParser()
    sandbox_cli.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "sandbox",
            "--port",
            "0",
            "--smtp-port",
            "0",
            "--mqtt-port",
            str(free_port()),
            "--sms-callback-delay",
            "0.01",
        ]
    )
    box = Sandbox(port=0, smtp_port=0)
    plugins = {name: await import_module(name).attach(box, args) for name in sandbox_cli.PLUGINS}
    await box.start()
    mqtt = {"port": args.mqtt_port, "ack_timeout_s": 5.0}
    raw = own_config(tmp_path)
    raw["channels"]["email.smtp"].update({"port": box.smtp.port, "security": "none"})
    # Real sender rates (1, 3 and 100 a second) would make this a minute-long test.
    raw["channels"]["sms.twilio"].update(
        {
            "api_base_url": box.url,
            "senders": [{"number": "22395", "type": "short_code", "rate_per_second": 5000}],
        }
    )
    for name in DEVICE_CHANNELS:
        raw["channels"][name].update(mqtt)
    raw["channels"] = {k: v for k, v in raw["channels"].items() if k in ALL_CHANNELS}
    raw["base_dir"] = config_dir()
    settings = Settings.model_validate(raw)
    run = await start_service(settings)
    await point_push_at(run.service.db, box.url)
    try:
        yield Stack(box, plugins, run)
    finally:
        await run.client.close()
        await box.stop()
