"""`clarion token`: a fresh token and a config entry that authenticates it."""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import tomllib

import pytest

from dispatcher.access import cli as tokens
from dispatcher.access.auth import Authenticator, token_sha256
from dispatcher.settings import AuthSettings


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    tokens.register(parser.add_subparsers())
    return parser.parse_args(argv)


class TestTokenCommand:
    """The printed entry is valid config and only its hash is in it."""

    def test_new_entry_authenticates(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The token printed once authenticates against the entry printed with it."""
        out = io.StringIO()
        args = parse(["token", "new", "--name", "ehs", "--role", "drill",
                      "--segments", "residents-north", "--signed"])
        assert args.func(args, out) == 0
        text = out.getvalue()
        token = re.search(r"not shown again\): (\S+)", text)
        secret = re.search(r"HMAC secret .*: (\S+)$", text, re.MULTILINE)
        assert token and secret
        config = tomllib.loads(text.split("Add to the config:", 1)[1])
        (entry,) = config["auth"]["tokens"]
        assert token.group(1) not in text.split("Add to the config:", 1)[1]
        assert entry["sha256"] == token_sha256(token.group(1))
        monkeypatch.setenv(entry["hmac_secret_env"], secret.group(1))
        auth = Authenticator(AuthSettings.model_validate(config["auth"]))
        caller = auth.authenticate(f"Bearer {token.group(1)}")
        assert caller is not None
        assert (caller.name, caller.role.value, caller.scopes) == (
            "ehs", "drill", ("residents-north",))
        assert auth.secret_for(caller) == secret.group(1)

    def test_hash(self) -> None:
        """`clarion token hash` prints what the config stores."""
        out = io.StringIO()
        args = parse(["token", "hash"])
        assert tokens.cmd_hash(args, io.StringIO("abc\n"), out) == 0
        assert out.getvalue().strip() == token_sha256("abc")

    def test_installed_command(self) -> None:
        """`clarion token hash` is a subcommand of the installed `clarion`."""
        done = subprocess.run(
            [sys.executable, "-m", "dispatcher.cli", "token", "hash"],
            input="abc\n", capture_output=True, text=True, check=False, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == token_sha256("abc")
