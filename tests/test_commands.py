"""The operator commands: `clarion run`'s token and `clarion send`'s progress."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from dispatcher.commands import _send, run_token
from dispatcher.settings import TOKEN_ENV, Settings, config_dir
from tests.conftest import SettingsFactory
from tests.support import TOKEN, own_config, start_service


class TestRunToken:
    """`make run` prints one API token, kept under var/, the same at every start."""

    def test_made_once_and_kept(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The first start makes the token and keeps it (owner only); later starts read it."""
        monkeypatch.delenv(TOKEN_ENV, raising=False)
        path = tmp_path / "var" / "api-token"
        first = run_token(path)
        assert first.startswith("demo-") and len(first) > 30
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert run_token(path) == first

    def test_an_exported_token_wins(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A token set in the environment is used and nothing is written."""
        monkeypatch.setenv(TOKEN_ENV, "mine-0123456789abcdef")
        path = tmp_path / "var" / "api-token"
        assert run_token(path) == "mine-0123456789abcdef"
        assert not path.exists()

    async def test_works_after_a_restart(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The token printed at one start is accepted by the service started next."""
        monkeypatch.delenv(TOKEN_ENV, raising=False)
        path = tmp_path / "var" / "api-token"
        exported = run_token(path)
        for _ in range(2):
            raw = own_config(tmp_path)
            raw["auth"]["token"] = run_token(path)
            raw["channels"] = {}
            raw["base_dir"] = config_dir()
            run = await start_service(Settings.model_validate(raw))
            try:
                resp = await run.client.get(
                    "/v1/feeds/events", headers={"Authorization": f"Bearer {exported}"})
                assert resp.status == 200
            finally:
                await run.client.close()


class TestSendProgress:
    """`clarion send` counts the same deliveries on both sides of its bars."""

    async def test_done_never_exceeds_total(
        self, make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """People without an e-mail address are left out of both numbers, and named."""
        run = await start_service(make_settings())
        try:
            url = str(run.client.make_url("")).rstrip("/")
            body = {"kind": "advisory", "text": "Water main repair on Elm Street today. "
                    "Use the north entrance of the library.", "audience": "all"}
            assert await _send(url, TOKEN, body, wait=True) == 0
        finally:
            await run.client.close()
        out = capsys.readouterr().out
        bars = re.findall(r"email\D+(\d+)/(\d+)", out)
        assert bars, out
        done, total = (int(n) for n in bars[-1])
        assert done == total, out
        assert "not reached" in out
