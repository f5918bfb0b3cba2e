"""Settings models whose secrets may come inline, from a `*_file` key or from a `*_env` key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator


class SettingsModel(BaseModel):
    """Base for every config section: unknown keys refused, secrets from files or env too."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _resolve_secret_sources(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name, info in cls.model_fields.items():
            if "SecretStr" not in str(info.annotation):
                continue
            file_key, env_key = f"{name}_file", f"{name}_env"
            if file_key in data:
                path = Path(str(data.pop(file_key))).expanduser()
                try:
                    data[name] = path.read_text(encoding="utf-8").strip()
                except OSError as exc:
                    raise ValueError(f"{file_key}: cannot read {path}: {exc.strerror}") from exc
            if env_key in data:
                var = str(data.pop(env_key))
                value = os.environ.get(var)
                if value is None:
                    raise ValueError(f"{env_key}: environment variable {var} is not set")
                data[name] = value
        return data


def reveal(secret: SecretStr | None) -> str:
    """The secret's text, or empty when unset."""
    return secret.get_secret_value() if secret is not None else ""
