"""Shared fixtures: the sandbox on free ports, settings pointing at it, a running service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from channels.sandbox.server import Sandbox
from dispatcher.settings import Settings, config_dir, load_settings
from tests.support import EMAIL_ONLY, TOKEN, Running, start_service


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
    """Embedded default settings, store in tmp_path, e-mail at the sandbox.

    `channels` adds channels from the embedded config (patched with the given keys);
    other keyword arguments patch top-level sections.
    """

    def make(
        channels: dict[str, dict[str, Any]] | None = None, **sections: dict[str, Any]
    ) -> Settings:
        base = load_settings()
        raw = base.model_dump(mode="json", exclude={"base_dir"})
        raw["store"]["url"] = f"sqlite:///{tmp_path / 'clarion.db'}"
        raw["auth"] = {"token": TOKEN, "override_roles": ["admin"], "tokens": []}
        raw["dispatch"].update({"retry_base_s": 0.05, "retry_max_s": 0.2, "poll_s": 0.05})
        # The embedded feeds poll the `make run` sandbox's port; tests poll their own servers.
        raw["feeds"]["enabled"] = False
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
    raw = load_settings().model_dump(mode="json", exclude={"base_dir"})
    raw["store"]["url"] = f"sqlite:///{tmp_path / 'clarion.db'}"
    raw["auth"] = {"token": TOKEN, "override_roles": ["admin"], "tokens": []}
    raw["dispatch"].update({"retry_base_s": 0.05, "retry_max_s": 0.2, "poll_s": 0.05})
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
    port = free_port()
    raw["service"].update({"port": port, "public_url": f"http://127.0.0.1:{port}"})
    raw["base_dir"] = config_dir()
    settings = Settings.model_validate(raw)
    run = await start_service(settings, port=port)
    # The example campus's push targets name the default sandbox port; point them here.
    await run.service.db.execute(
        "UPDATE people SET push = replace(push, '127.0.0.1:8026', ?)", (f"127.0.0.1:{box.port}",)
    )
    try:
        yield Stack(box, plugins, run)
    finally:
        await run.client.close()
        await box.stop()
