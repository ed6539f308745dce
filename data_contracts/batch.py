"""The batch folder: one delivery of contract tables, its manifest, its one writer and its reader.

A batch folder holds one file per contract table it delivers (`<table>.csv` or `<table>.parquet`; any table
may be absent) and `batch.json`, the manifest:

    {"batch_id": "...", "extract_date": "YYYY-MM-DD", "currency": "GBP", "kind": "weekly",
     "files": [{"name": "persons.csv", "table": "persons", "rows": 123, "sha256": "..."}, ...],
     ...details of the writer (the import's reconciliation, the generator's seed)...}

`rows` counts data rows (a CSV's header is not a row). `write_batch` is the one writer (the importer, the
synthetic generator and the workspace's caseload export use it): the files and the manifest are written into a
hidden sibling folder (`.<name>.writing`), each fsynced, then `batch.complete` (holding the manifest's
sha256) is written last and the folder is renamed into place, so a reader never sees half a batch that this
writer wrote. `read_batch` reads a folder back; `is_batch` and `batches_in` say which folders are batches
(hidden folders are writers' staging, never batches).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from data_contracts.errors import DomainError
from data_contracts.reference import REFERENCE_CURRENCY
from data_contracts.tables import TABLES

log = logging.getLogger("riskstrat.batch")

BATCH_MANIFEST = "batch.json"
"""The manifest beside the table files."""
COMPLETE_MARKER = "batch.complete"
"""Written last by `write_batch`; holds the sha256 of the manifest it completes."""
FILE_FORMATS = ("csv", "parquet")
"""How a table file may be written: `<table>.<format>`."""
MANIFEST_KEYS = ("batch_id", "extract_date", "currency", "kind", "files")
"""The manifest's own keys; any other key is a detail of the writer, kept as written."""


class BatchRejected(DomainError):
    """The batch as a whole cannot be loaded; nothing from it was loaded."""


@dataclass(frozen=True)
class BatchFile:
    """One table file as the manifest lists it."""

    name: str
    table: str
    rows: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    batch_id: str
    extract_date: date | None
    currency: str | None  # of every cost in the batch; never converted
    kind: str | None  # "history", "weekly", "import", "caseload decisions"
    files: tuple[BatchFile, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)  # the writer's own keys (import reconciliation, seed)

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "batch_id": self.batch_id,
            "extract_date": self.extract_date.isoformat() if self.extract_date else None,
            "currency": self.currency,
            "kind": self.kind,
            "files": [vars(f) for f in self.files],
            **self.details,
        }
        return json.dumps(body, indent=2) + "\n"


@dataclass(frozen=True)
class Batch:
    """A batch folder as read: its manifest (None when it has none), table files and their checksums."""

    batch_id: str
    directory: Path
    manifest: Manifest | None
    files: dict[str, Path]  # table name -> file
    sha256: dict[str, str]  # table name -> checksum
    combined_sha256: str  # of the table files and the manifest: a changed extract date is a changed batch

    @property
    def extract_date(self) -> date | None:
        return self.manifest.extract_date if self.manifest else None

    @property
    def currency(self) -> str:
        return (self.manifest.currency if self.manifest else None) or REFERENCE_CURRENCY


# ---------------------------------------------------------------------------------------------- files


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_format(path: Path) -> str:
    """'parquet' or 'csv': how a table file is read."""
    return "parquet" if path.suffix == ".parquet" else "csv"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------- the writer


class BatchWriter:
    """Collects a batch's table files in the staging folder (see `write_batch`)."""

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        self.files: list[BatchFile] = []

    def add_frame(self, table: str, frame: pl.DataFrame, file_format: str = "csv") -> Path:
        """Write one table's rows as `<table>.<file_format>`."""
        if table not in TABLES:
            raise ValueError(f"{table!r} is not a contract table")
        if file_format not in FILE_FORMATS:
            raise ValueError(f"file_format must be one of {FILE_FORMATS}, not {file_format!r}")
        path = self.staging / f"{table}.{file_format}"
        if file_format == "csv":
            frame.write_csv(path)
        else:
            frame.write_parquet(path, compression="zstd")
        return self._added(path, table, frame.height)

    def add_file(self, name: str, table: str, data: bytes, rows: int) -> Path:
        """A table file given as its bytes (already encoded), with the number of data rows it holds."""
        if table not in TABLES:
            raise ValueError(f"{table!r} is not a contract table")
        path = self.staging / name
        path.write_bytes(data)
        return self._added(path, table, rows)

    def add_copy(self, source: Path, table: str, rows: int) -> Path:
        """A copy of an existing table file (e.g. of another batch), under its own name."""
        if table not in TABLES:
            raise ValueError(f"{table!r} is not a contract table")
        path = self.staging / source.name
        shutil.copyfile(source, path)
        return self._added(path, table, rows)

    def _added(self, path: Path, table: str, rows: int) -> Path:
        if any(f.table == table for f in self.files):
            raise ValueError(f"{self.staging.name}: table {table} given twice")
        self.files.append(BatchFile(path.name, table, rows, file_sha256(path)))
        return path


@contextmanager
def write_batch(
    folder: Path,
    batch_id: str,
    extract_date: date | None,
    currency: str | None,
    kind: str | None,
    details: dict[str, Any] | None = None,
    replace: bool = False,
) -> Iterator[BatchWriter]:
    """Write a batch folder atomically: the caller adds table files to the yielded writer; on leaving the block
    the manifest and then the complete marker are written, everything is fsynced and the staging folder is
    renamed to `folder`. An error inside the block leaves no folder behind.

    `folder` must not exist or be empty, unless `replace` (then an existing batch there is replaced)."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not replace:
        raise FileExistsError(f"{folder} is not empty: write each batch to a new folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(f".{folder.name}.writing")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        writer = BatchWriter(staging)
        yield writer
        manifest = Manifest(batch_id, extract_date, currency, kind, tuple(writer.files), dict(details or {}))
        text = manifest.to_json()
        (staging / BATCH_MANIFEST).write_text(text, encoding="utf-8")
        for f in (*writer.files, BatchFile(BATCH_MANIFEST, "", 0, "")):
            _fsync(staging / f.name)
        marker = staging / COMPLETE_MARKER
        marker.write_text(hashlib.sha256(text.encode()).hexdigest() + "\n", encoding="utf-8")
        _fsync(marker)
        _fsync(staging)
        _swap_into_place(staging, folder)
        _fsync(folder.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap_into_place(staging: Path, folder: Path) -> None:
    if not folder.exists():
        staging.rename(folder)
        return
    if not any(folder.iterdir()):
        folder.rmdir()
        staging.rename(folder)
        return
    old = folder.with_name(f".{folder.name}.replaced")
    shutil.rmtree(old, ignore_errors=True)
    folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old)


# ---------------------------------------------------------------------------------------------- the reader


def read_manifest(folder: Path) -> Manifest | None:
    """The folder's manifest, None when it has none; BatchRejected when it cannot be read."""
    path = Path(folder) / BATCH_MANIFEST
    if not path.exists():
        return None
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BatchRejected(f"{BATCH_MANIFEST} in {folder.name}: cannot be read ({exc})") from exc
    if not isinstance(body, dict):
        raise BatchRejected(f"{BATCH_MANIFEST} in {folder.name}: expected a JSON object")
    extract_date = None
    if body.get("extract_date") is not None:
        try:
            extract_date = date.fromisoformat(str(body["extract_date"]))
        except ValueError as exc:
            raise BatchRejected(f"{BATCH_MANIFEST} in {folder.name}: bad extract_date ({exc})") from exc
    try:
        files = tuple(BatchFile(**f) for f in body.get("files") or ())
    except TypeError as exc:
        raise BatchRejected(f"{BATCH_MANIFEST} in {folder.name}: bad files list ({exc})") from exc
    return Manifest(
        batch_id=str(body.get("batch_id") or folder.name),
        extract_date=extract_date,
        currency=str(body["currency"]).upper() if body.get("currency") else None,
        kind=str(body["kind"]) if body.get("kind") else None,
        files=files,
        details={k: v for k, v in body.items() if k not in MANIFEST_KEYS},
    )


def _table_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    ignored: list[str] = []
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".csv", ".parquet") or not path.is_file():
            continue
        if path.stem not in TABLES:
            ignored.append(path.name)
            continue
        if path.stem in files:
            raise BatchRejected(f"{folder.name}: both {files[path.stem].name} and {path.name} given for one table")
        files[path.stem] = path
    if ignored:
        log.warning("batch folder %s: ignoring files that are not contract tables: %s", folder.name, ignored)
    return files


def read_batch(folder: Path) -> Batch:
    """The batch's manifest, table files and checksums (no rows read)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BatchRejected(f"batch folder {folder} does not exist")
    manifest = read_manifest(folder)
    files = _table_files(folder)
    sha256 = {name: file_sha256(path) for name, path in files.items()}
    parts = [f"{files[n].name}:{s}" for n, s in sorted(sha256.items())]
    if manifest is not None:
        parts.append(f"{BATCH_MANIFEST}:{file_sha256(folder / BATCH_MANIFEST)}")
    return Batch(
        batch_id=manifest.batch_id if manifest else folder.name,
        directory=folder,
        manifest=manifest,
        files=files,
        sha256=sha256,
        combined_sha256=hashlib.sha256("\n".join(parts).encode()).hexdigest(),
    )


# ---------------------------------------------------------------------------------------------- which folders


def is_batch(folder: Path) -> bool:
    """A folder is a batch when it holds a file, or nothing at all (a batch still arriving); a folder holding
    only folders is a folder of batches, and a hidden folder is a writer's staging, never a batch."""
    folder = Path(folder)
    if not folder.is_dir() or folder.name.startswith("."):
        return False
    entries = list(folder.iterdir())
    return not entries or any(p.is_file() for p in entries)


def batches_in(folder: Path) -> list[Path]:
    """The batches directly inside a folder of batches, in name order; a folder inside that is not a batch
    (it holds folders only) is logged and left out, a hidden one (a writer's staging) silently."""
    found: list[Path] = []
    for child in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        if is_batch(child):
            found.append(child)
        elif not child.name.startswith("."):
            log.warning("%s holds folders only: not a batch, left out (name its batches directly)", child)
    return found
