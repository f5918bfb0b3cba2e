"""Victim and reporter details sealed with Fernet (AES-128-CBC and HMAC-SHA256) at rest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import structlog
from cryptography.fernet import Fernet, InvalidToken

from dispatcher.access.credentials import reveal
from dispatcher.incidents.model import PrivateDetails
from dispatcher.incidents.settings import IncidentSettings

log = structlog.get_logger("clarion.incidents")


class SealError(Exception):
    """Sealed details cannot be opened with the configured key."""


class PrivateSeal:
    """Seals and opens `PrivateDetails` with one key."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_settings(cls, settings: IncidentSettings, store_url: str) -> PrivateSeal:
        """The configured key, or the generated one (made on first start, kept in a file)."""
        configured = reveal(settings.key)
        if configured:
            return cls(configured.encode())
        return cls(generated_key(settings.generated_key_path or default_key_path(store_url)))

    def seal(self, details: PrivateDetails) -> str:
        """The details as a Fernet token."""
        raw = json.dumps(details.as_json(), sort_keys=True, separators=(",", ":"))
        return self._fernet.encrypt(raw.encode()).decode()

    def open(self, token: str) -> PrivateDetails:
        """The details a token holds; raises SealError for another key or a changed token."""
        try:
            raw = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise SealError("sealed with another key, or changed after sealing") from None
        return PrivateDetails(victim=raw.get("victim", {}), reporter=raw.get("reporter", {}))


def default_key_path(store_url: str) -> Path:
    """Beside the SQLite file (so a store and its key travel together), else ./var."""
    if store_url.startswith("sqlite:///"):
        return Path(store_url.removeprefix("sqlite:///")).parent / "incidents.key"
    return Path("var") / "incidents.key"


def generated_key(path: Path) -> bytes:
    """The key in `path`, made there (readable by the owner only) when the file is missing."""
    if path.is_file():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    # O_EXCL: two processes starting together must not each write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as out:
        out.write(key + b"\n")
    log.warning("incidents.key_generated", path=str(path))
    return key
