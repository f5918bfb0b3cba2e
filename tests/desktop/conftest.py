"""Fixtures of the desktop client tests: the channel tests' mosquitto, shared."""

from __future__ import annotations

from tests.channels.conftest import mosquitto

__all__ = ["mosquitto"]
