"""Shared fixtures: the sandbox on free ports, settings pointing at it, a running service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
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

    def make(channels: dict[str, dict[str, Any]] | None = None, **sections: dict[str, Any]) -> Settings:
        base = load_settings()
        raw = base.model_dump(mode="json", exclude={"base_dir"})
        raw["store"]["url"] = f"sqlite:///{tmp_path / 'clarion.db'}"
        raw["auth"] = {"token": TOKEN, "override_roles": ["admin"], "tokens": []}
        raw["dispatch"].update({"retry_base_s": 0.05, "retry_max_s": 0.2, "poll_s": 0.05})
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
