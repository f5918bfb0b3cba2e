"""`clarion provider drain|undrain|list` against a store named in a config file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dispatcher.cli import main as cli_main
from dispatcher.store.database import open_database
from dispatcher.store.providers import ProviderDrains
from tests.pg import pg_cluster, pg_url

__all__ = ["pg_cluster", "pg_url"]


def drained(url: str) -> frozenset[str]:
    """What every node reads from the store."""

    async def read() -> frozenset[str]:
        db = await open_database(url)
        try:
            return await ProviderDrains(db).drained()
        finally:
            await db.close()

    return asyncio.run(read())


class TestProviderCommand:
    """A drain is kept in the store, audited, and undone by `undrain`."""

    def test_drain_list_undrain(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Drained once (a second drain keeps the first), listed with its reason, undrained."""
        url = f"sqlite:///{tmp_path / 'c.db'}"
        config = tmp_path / "clarion.toml"
        config.write_text(f'[store]\nurl = "{url}"\n')
        args = ["--config", str(config)]
        assert cli_main(["provider", "drain", "sms.twilio", "--reason", "carrier window",
                         *args]) == 0
        assert "sms.twilio drained" in capsys.readouterr().out
        assert cli_main(["provider", "drain", "sms.twilio", *args]) == 0
        assert "already drained" in capsys.readouterr().out
        assert drained(url) == {"sms.twilio"}
        assert cli_main(["provider", "list", *args]) == 0
        listed = capsys.readouterr().out
        assert "sms.twilio" in listed and "carrier window" in listed
        assert cli_main(["provider", "undrain", "sms.twilio", *args]) == 0
        assert "sms.twilio undrained" in capsys.readouterr().out
        assert drained(url) == frozenset()
        assert cli_main(["provider", "list", *args]) == 0
        assert "no provider is drained" in capsys.readouterr().out

    def test_unknown_name_is_refused(self, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
        """A name no channel has: exit 2, nothing stored."""
        url = f"sqlite:///{tmp_path / 'c.db'}"
        config = tmp_path / "clarion.toml"
        config.write_text(f'[store]\nurl = "{url}"\n')
        assert cli_main(["provider", "drain", "sms.nobody", "--config", str(config)]) == 2
        assert "unknown provider" in capsys.readouterr().err
        assert drained(url) == frozenset()


class TestBothDialects:
    """Migration 0017 and the drains on PostgreSQL, as on SQLite."""

    async def test_drains_on_postgres(self, pg_url: str) -> None:
        """Drain, a second drain refused, read, undrain."""
        db = await open_database(pg_url)
        try:
            drains = ProviderDrains(db)
            assert await drains.drain("sms.twilio", actor="t", reason="r", now_ms=5)
            assert not await drains.drain("sms.twilio", actor="t", reason="again", now_ms=6)
            assert await drains.drained() == {"sms.twilio"}
            (only,) = await drains.all()
            assert (only.name, only.drained_at, only.reason) == ("sms.twilio", 5, "r")
            assert await drains.undrain("sms.twilio")
            assert not await drains.undrain("sms.twilio")
            assert await drains.drained() == frozenset()
        finally:
            await db.close()
