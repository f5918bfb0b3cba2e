"""The campus's place names, read from the directory files the service settings name.

The policy takes place names, never the service settings: this is where the two meet.
"""

from __future__ import annotations

from dispatcher.policy.lexicon import directory_places
from dispatcher.settings import Settings


def campus_places(settings: Settings) -> frozenset[str]:
    """The campus's building names and addresses from its directory files (buildings, people,
    devices)."""
    directory = settings.directory
    names = [directory.people, directory.devices, directory.buildings]
    return directory_places(tuple(settings.resolve(n) for n in names if n))
