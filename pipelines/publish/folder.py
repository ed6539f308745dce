"""The run folder: built in a temporary sibling folder and renamed into place, so a crash never leaves a
half-written week; every file written is recorded (rows, sha256, bytes) for the manifest."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.publish.publication import Provenance

log = logging.getLogger("riskstrat")


@dataclass(frozen=True)
class Written:
    path: str
    rows: int
    sha256: str
    bytes: int
    sheets: dict[str, int] | None = None


class Folder:
    """Writes files under one root and remembers each one (relative path, rows, sha256) for the manifest."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.written: list[Written] = []
        self._made: set[Path] = set()

    def write(self, rel: str, data: bytes | str, rows: int, sheets: dict[str, int] | None = None) -> None:
        payload = data.encode("utf-8") if isinstance(data, str) else data
        path = self.root / rel
        if path.parent not in self._made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(path.parent)
        path.write_bytes(payload)
        digest = hashlib.sha256(payload).hexdigest()
        self.written.append(Written(rel, rows, digest, len(payload), sheets))


@contextmanager
def staging_dir(dest: Path, record: Callable[[], AbstractContextManager[object]] | None = None) -> Iterator[Path]:
    """Yield a temporary folder next to `dest`; on success swap it in for `dest`, on failure delete it.

    `record` (e.g. the warehouse transaction keeping the run's scores and lists) is entered once everything is
    staged and the swap happens inside it: if recording fails the staged folder is removed and `dest` is left as
    it was; if the swap fails the record is rolled back. So what is recorded is what was published.

    Same parent, so the rename stays on one filesystem. The old folder is moved aside before the new
    one moves in and is restored if that fails, so `dest` is always either the old run or the new one
    (apart from the instant between the two renames: Linux has no portable atomic directory swap)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(dest.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        yield staging
        with (record or nullcontext)():
            _swap_into_place(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-[A-Za-z0-9_]+$")


def clean_leftovers(parent: Path) -> list[str]:
    """What a killed publish left beside the run folders, put right before the next one starts: a half-built
    staging folder (`.<as_of>.tmp-*`, people's pages among its files) is removed; a previous run moved aside
    (`.<as_of>.old-*`) goes back into place if the kill came between the two renames, else is removed. Returns
    what was done, one line each (folder names only)."""
    done: list[str] = []
    for path in sorted(parent.iterdir()) if parent.is_dir() else []:
        match = _LEFTOVER.match(path.name)
        if match is None or not path.is_dir():
            continue
        dest = parent / match["name"]
        if match["kind"] == "old" and not dest.exists():
            os.rename(path, dest)
            done.append(f"restored {dest.name} from {path.name}")
        else:
            shutil.rmtree(path)
            done.append(f"removed {path.name}")
    for line in done:
        log.warning("publish: %s (left by an interrupted run)", line)
    return done


def _swap_into_place(staging: Path, dest: Path) -> None:
    if not dest.exists():
        os.rename(staging, dest)
        return
    old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(dest, old)
    try:
        os.rename(staging, dest)
    except BaseException:
        os.rename(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_manifest(folder: Folder, prov: Provenance, teams: int, people: int, dropped: int) -> None:
    files = []
    for w in sorted(folder.written, key=lambda w: w.path):
        entry: dict[str, Any] = {"path": w.path, "rows": w.rows, "sha256": w.sha256, "bytes": w.bytes}
        if w.sheets is not None:
            entry["sheets"] = w.sheets
        files.append(entry)
    manifest = {
        "provenance": prov.as_dict(),
        "teams": teams,
        "people_listed": people,
        "guard_dropped": dropped,
        "files": files,
    }
    (folder.root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
