"""Student-system exports: the flat files Banner, Workday or PeopleSoft write, read on a schedule.

An export's `path` is either one file, imported whenever its content changes (the system
overwrites it each night), or a folder, whose new `.csv` (or `.txt`) files are each imported
once, oldest first, and then moved to `done/` (or `failed/` when unreadable). A file still
being written is left for the next look: it is imported once its size and time were the same
at two looks in a row. Only the columns of `columns` are read, so nothing else of the export
(a birth date, a national id) reaches the directory. Every import goes through the safety
brake.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from segments.directory import DirectoryFileError, ProgressFn, read_rows
from segments.imports import DirectoryImports, ImportOutcome
from segments.sync_settings import ExportSettings

log = structlog.get_logger("clarion.directory")

EXPORT_SUFFIXES = (".csv", ".txt")
DONE = "done"
FAILED = "failed"


def source_of(name: str) -> str:
    """The name an export's imports are kept under."""
    return f"export:{name}"


def fingerprint(path: Path) -> str:
    """The SHA-256 of a file's bytes: an unchanged export is not imported again."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ExportWatcher:
    """One export's looks: which folder files were seen at which size and time."""

    name: str
    settings: ExportSettings
    path: Path
    _seen: dict[Path, tuple[int, int]] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """The name its imports are kept under."""
        return source_of(self.name)

    def settled(self, files: list[Path]) -> list[Path]:
        """The folder's files whose size and time did not change since the previous look."""
        now: dict[Path, tuple[int, int]] = {}
        for file in files:
            try:
                stat = file.stat()
            except FileNotFoundError:
                continue
            now[file] = (stat.st_size, stat.st_mtime_ns)
        ready = [f for f, seen in now.items() if self._seen.get(f) == seen]
        self._seen = now
        return ready

    async def look(
        self,
        imports: DirectoryImports,
        *,
        wait_settled: bool = True,
        brake: bool = True,
        progress: ProgressFn | None = None,
        writing: ProgressFn | None = None,
    ) -> list[ImportOutcome | int]:
        """Import what is new: an outcome per file imported, or the kept id of a failure."""
        if self.path.is_dir():
            files = sorted(
                (f for f in self.path.iterdir()
                 if f.is_file() and f.suffix.lower() in EXPORT_SUFFIXES),
                key=lambda f: (f.stat().st_mtime_ns, f.name),
            )
            ready = self.settled(files) if wait_settled else files
            done: list[ImportOutcome | int] = []
            for file in ready:
                outcome = await self._import(
                    imports, file, brake=brake, progress=progress, writing=writing
                )
                target = self.path / (FAILED if isinstance(outcome, int) else DONE)
                target.mkdir(exist_ok=True)
                file.replace(target / file.name)
                done.append(outcome)
            return done
        if not self.path.is_file():
            raise DirectoryFileError(f"{self.path}: no such file or folder (export {self.name})")
        print_ = fingerprint(self.path)
        latest = await imports.store.latest(self.source)
        if latest is not None and latest.fingerprint == print_:
            return []
        return [await self._import(imports, self.path, brake=brake, progress=progress,
                                   writing=writing, known=print_)]

    async def _import(
        self,
        imports: DirectoryImports,
        file: Path,
        *,
        brake: bool,
        progress: ProgressFn | None,
        writing: ProgressFn | None = None,
        known: str = "",
    ) -> ImportOutcome | int:
        settings = self.settings
        print_ = known or fingerprint(file)
        try:
            rows = read_rows(
                file, progress, columns=settings.columns or None, delimiter=settings.delimiter
            )
            outcome = await imports.run(
                self.source, rows, detail=file.name, fingerprint=print_, role=settings.role,
                remove_missing=settings.remove_missing, header_row=True, brake=brake,
                locate=settings.columns, writing=writing,
            )
        except DirectoryFileError as exc:
            return await imports.failed(
                self.source, str(exc), detail=file.name, fingerprint=print_
            )
        return outcome

