"""The config file: validated at start, errors name the key, secrets from files or env."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.access.auth import Authenticator, token_sha256
from dispatcher.alerting.lint import lint_one
from dispatcher.domain import AlertKind, ChannelKind
from dispatcher.settings import ConfigError, config_dir, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "clarion.toml"
    path.write_text(text, encoding="utf-8")
    return path


class TestLoading:
    """Good files load; bad ones say exactly what is wrong."""

    def test_embedded_default_loads(self) -> None:
        """The embedded default is the example campus with the sandbox as providers."""
        settings = load_settings()
        assert settings.service.port == 8025  # hermetic: the default itself, never reached
        assert settings.channels["email.smtp"]["port"] == 8027  # hermetic: as above
        assert (config_dir() / settings.directory.people).is_file()

    def test_example_drills_pass_the_policy(self) -> None:
        """Each example drill in the embedded config would be sent as written once enabled."""
        settings = load_settings()
        assert settings.drills.schedule, "the embedded config shows example drills"
        for name, drill in settings.drills.schedule.items():
            body = drill.request().model_dump(mode="json", exclude_none=True)
            verdict = lint_one(body, settings)
            assert verdict["ok"], (name, verdict["violations"])

    def test_unknown_key_is_named(self, tmp_path: Path) -> None:
        """A misspelt key is an error that names it."""
        with pytest.raises(ConfigError, match=r"service\.prot"):
            load_settings(write(tmp_path, "[service]\nprot = 1\n"))

    def test_wrong_type_is_named(self, tmp_path: Path) -> None:
        """A value of the wrong type names its key."""
        with pytest.raises(ConfigError, match=r"service\.port"):
            load_settings(write(tmp_path, '[service]\nport = "eighty"\n'))

    def test_channel_section_is_checked(self, tmp_path: Path) -> None:
        """A channel section is validated against its channel's own settings."""
        with pytest.raises(ConfigError, match=r"email\.smtp.*pool_size"):
            load_settings(write(tmp_path, '[channels."email.smtp"]\npool_size = 0\n'))
        with pytest.raises(ConfigError, match="unknown channel"):
            load_settings(write(tmp_path, '[channels."fax.modem"]\n'))

    def test_nothing_sounds_by_default(self, tmp_path: Path) -> None:
        """No kind's default channels sound sirens or PA, and the config may not make them."""
        table = load_settings().dispatch.default_channels
        assert {c.value for c in table[AlertKind.TIMELY_WARNING]} == {
            "sms", "push", "email", "broadcast", "webhook"
        }
        assert all(c not in (ChannelKind.SIREN, ChannelKind.PA)
                   for channels in table.values() for c in channels)
        with pytest.raises(ConfigError, match=r"emergency: siren must be named by an alert"):
            load_settings(write(tmp_path, '[dispatch.default_channels]\n'
                                          'emergency = ["sms", "siren"]\n'))

    def test_not_toml(self, tmp_path: Path) -> None:
        """A file that is not TOML says so."""
        with pytest.raises(ConfigError, match="not valid TOML"):
            load_settings(write(tmp_path, "[service\n"))

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file is named."""
        with pytest.raises(ConfigError, match="no such config file"):
            load_settings(tmp_path / "nope.toml")


class TestSecrets:
    """Secrets come inline, from a file or from the environment, and never print."""

    def test_secret_from_file(self, tmp_path: Path) -> None:
        """`password_file` reads the file."""
        (tmp_path / "pw").write_text("s3cret\n")
        settings = load_settings(
            write(
                tmp_path,
                (
                    '[channels."email.smtp"]\n'
                    f'username = "relay"\npassword_file = "{tmp_path / "pw"}"\n'
                ),
            )
        )
        from channels.email_smtp import SmtpSettings

        smtp = SmtpSettings.model_validate(settings.channels["email.smtp"])
        assert smtp.password is not None and smtp.password.get_secret_value() == "s3cret"
        assert "s3cret" not in repr(smtp)

    def test_secret_from_missing_env(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """An unset environment variable is an error naming it."""
        monkeypatch.delenv("NO_SUCH_VAR", raising=False)
        with pytest.raises(ConfigError, match="NO_SUCH_VAR"):
            load_settings(
                write(tmp_path, '[channels."email.smtp"]\npassword_env = "NO_SUCH_VAR"\n')
            )

    def test_token_from_environment(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """CLARION_API_TOKEN becomes the admin token."""
        monkeypatch.setenv("CLARION_API_TOKEN", "from-env")
        auth = Authenticator(load_settings(write(tmp_path, "")).auth)
        caller = auth.authenticate("Bearer from-env")
        assert caller is not None and caller.role.value == "admin"
        assert auth.generated is None

    def test_generated_token_when_none_configured(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With no token anywhere, one is generated, so the API is never open."""
        monkeypatch.delenv("CLARION_API_TOKEN", raising=False)
        auth = Authenticator(load_settings(write(tmp_path, "")).auth)
        assert auth.generated
        assert auth.authenticate(f"Bearer {auth.generated}") is not None
        assert auth.authenticate("Bearer other") is None

    def test_hashed_tokens_with_roles(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Configured tokens are stored as SHA-256 and carry their role."""
        monkeypatch.delenv("CLARION_API_TOKEN", raising=False)
        text = (
            "[[auth.tokens]]\n"
            f'name = "ehs"\nrole = "drill"\nsha256 = "{token_sha256("drill-token")}"\n'
        )
        auth = Authenticator(load_settings(write(tmp_path, text)).auth)
        caller = auth.authenticate("Bearer drill-token")
        assert caller is not None and caller.role.value == "drill" and not caller.can_send_live
        assert auth.generated is None
