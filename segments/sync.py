"""Keeps the directory current on a schedule: the LDAP sync and each student-system export,
each in its own loop, every run through the safety brake and kept with its report."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from segments.audience import resolve_path
from segments.directory import DirectoryFileError
from segments.exports import ExportWatcher
from segments.imports import DirectoryImports
from segments.ldap_sync import LdapSyncError, sync_ldap
from segments.settings import DirectorySettings

log = structlog.get_logger("clarion.directory")


class DirectorySync:
    """The scheduled imports of `[directory.ldap]` (when enabled) and `[directory.exports]`."""

    def __init__(
        self, imports: DirectoryImports, settings: DirectorySettings, base_dir: Path
    ) -> None:
        self._imports = imports
        self._settings = settings
        self._base_dir = base_dir
        self._tasks: list[asyncio.Task[None]] = []
        self.watchers = {
            name: ExportWatcher(name, export, resolve_path(base_dir, export.path))
            for name, export in settings.exports.items()
        }

    async def start(self) -> None:
        """Start one loop per source; each looks once at once, then every `every_s`."""
        ldap = self._settings.ldap
        if ldap.enabled:
            self._tasks.append(asyncio.create_task(
                self._every("ldap", ldap.every_s, self._sync_ldap), name="directory.ldap"
            ))
        for name, watcher in self.watchers.items():
            self._tasks.append(asyncio.create_task(
                self._every(watcher.source, watcher.settings.every_s, self._look(watcher)),
                name=f"directory.{watcher.source}",
            ))
            log.info("directory.export_watched", export=name, folder=watcher.path.is_dir())

    async def stop(self) -> None:
        """Stop every loop (an import under way is cancelled before it writes, or between
        two batches of its writes; the next run plans afresh)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _sync_ldap(self) -> None:
        await sync_ldap(
            self._imports, self._settings.ldap, self._base_dir, skip_unchanged=True
        )

    def _look(self, watcher: ExportWatcher) -> Callable[[], Awaitable[None]]:
        async def look() -> None:
            await watcher.look(self._imports)

        return look

    async def _every(
        self, source: str, every_s: float, run: Callable[[], Awaitable[None]]
    ) -> None:
        while True:
            try:
                await run()
            except (LdapSyncError, DirectoryFileError) as exc:
                # Kept with the import's report (LDAP) or said here (a missing export file).
                log.warning("directory.sync_failed", source=source, error=str(exc))
            except OSError as exc:
                log.warning("directory.sync_failed", source=source,
                            error=f"{type(exc).__name__}: {exc.strerror}")
            await asyncio.sleep(every_s)
