"""Erasure that reaches every earlier output folder: a person who opts out after appearing on a list disappears
from the weeks already published too, not only from the week being written.

Each run folder under the outputs folder is searched for the opted-out ids; where a file holds one, it is
rewritten without them, each file atomically: the person's page is deleted; their rows go from the CSVs (ranks
closed up, as the guard does within a run), from the workbook's sheets and from the list page (every person row
of a page carries `data-person`); the manifest loses their page and records the rewritten files' new checksums.
Files that do not mention anyone opted out are not touched, so running it every week costs a read of each past
folder and changes nothing the second time.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from pipelines.publish.cells import csv_text

log = logging.getLogger("riskstrat")

_RANKS = {"rank": "team_id", "rising_rank": "team_id"}
"""Rank columns closed up after rows go, and the column each is counted within."""


@dataclass
class OutputErasure:
    """What erasure changed in earlier outputs: counts only (never who)."""

    folders: int = 0
    pages_deleted: int = 0
    files_rewritten: int = 0
    rows_removed: int = 0
    changed_folders: list[str] = field(default_factory=list)


def erase_from_outputs(out_dir: Path, person_ids: Iterable[str], skip: Iterable[str] = ()) -> OutputErasure:
    """Remove `person_ids` from every run folder under `out_dir` (folders named in `skip` are left alone)."""
    ids = sorted({str(p) for p in person_ids if p})
    report = OutputErasure()
    if not ids or not out_dir.is_dir():
        return report
    needles = [i.encode("utf-8") for i in ids]
    skipped = set(skip)
    for run in sorted(p for p in out_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if run.name in skipped or not (run / "manifest.json").is_file():
            continue
        report.folders += 1
        changed = _erase_run(run, ids, needles, report)
        if changed:
            report.changed_folders.append(run.name)
    if report.changed_folders:
        log.info(
            "erasure reached %d earlier output folders: %d pages deleted, %d files rewritten, %d rows removed",
            len(report.changed_folders),
            report.pages_deleted,
            report.files_rewritten,
            report.rows_removed,
        )
    return report


def _erase_run(run: Path, ids: list[str], needles: list[bytes], report: OutputErasure) -> bool:
    manifest_path = run / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    entries = {e["path"]: e for e in manifest["files"]}
    changed = False
    for rel in sorted(entries):
        path = run / rel
        if not path.is_file():
            continue
        if path.parent.name == "people" and path.stem in ids:
            path.unlink()
            del entries[rel]
            report.pages_deleted += 1
            changed = True
            continue
        data = path.read_bytes()
        if not _mentions(path, data, needles):
            continue
        rewritten, removed = _without(path, data, ids)
        if rewritten == data:
            continue
        _replace(path, rewritten)
        entries[rel] = {
            **entries[rel],
            "rows": max(int(entries[rel].get("rows", 0)) - removed, 0),
            "sha256": hashlib.sha256(rewritten).hexdigest(),
            "bytes": len(rewritten),
        }
        report.files_rewritten += 1
        report.rows_removed += removed
        changed = True
    if changed:
        manifest["files"] = [entries[k] for k in sorted(entries)]
        manifest["erased_after_publishing"] = True
        _replace(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    return changed


def _mentions(path: Path, data: bytes, needles: list[bytes]) -> bool:
    if path.suffix == ".xlsx":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return any(any(n in z.read(m) for n in needles) for m in z.namelist())
    return any(n in data for n in needles)


def _without(path: Path, data: bytes, ids: list[str]) -> tuple[bytes, int]:
    if path.suffix == ".csv":
        return _csv_without(data, ids)
    if path.suffix == ".xlsx":
        return _workbook_without(data, ids)
    if path.suffix == ".html":
        return _page_without(data, ids)
    return data, 0


def _csv_without(data: bytes, ids: list[str]) -> tuple[bytes, int]:
    frame = pl.read_csv(io.BytesIO(data), infer_schema=False)
    if "person_id" not in frame.columns:
        return data, 0
    kept = frame.filter(~pl.col("person_id").is_in(ids).fill_null(False))
    for rank, within in _RANKS.items():
        if rank in kept.columns and within in kept.columns:
            # Each file is one team's rows in rank order: number them again in that order.
            kept = kept.with_columns(pl.int_range(1, pl.len() + 1).over(within).cast(pl.String).alias(rank))
    # The CSV was neutralised when published: values already carry their apostrophe, so nothing changes twice.
    return csv_text(kept).encode("utf-8"), frame.height - kept.height


def _workbook_without(data: bytes, ids: list[str]) -> tuple[bytes, int]:
    import openpyxl

    wb = openpyxl.load_workbook(io.BytesIO(data))
    removed = 0
    wanted = set(ids)
    new_rank: dict[object, int] = {}
    for ws in wb.worksheets:  # List comes first: its ranks, closed up, renumber the other sheets' too
        header = [c.value for c in next(ws.iter_rows(min_row=1, max_row=1), [])]
        if "Person ID" not in header:
            continue
        column = header.index("Person ID") + 1
        doomed = [r for r in range(2, ws.max_row + 1) if ws.cell(r, column).value in wanted]
        for r in reversed(doomed):
            ws.delete_rows(r)
        if doomed:
            _rebind_links(ws)
        if ws.title == "List":
            removed = len(doomed)
            if "Rank" in header:
                ranks = [ws.cell(r, header.index("Rank") + 1) for r in range(2, ws.max_row + 1)]
                new_rank = {c.value: i for i, c in enumerate((c for c in ranks if c.value is not None), start=1)}
        if "Rank" in header and new_rank:
            for r in range(2, ws.max_row + 1):
                cell = ws.cell(r, header.index("Rank") + 1)
                cell.value = new_rank.get(cell.value, cell.value)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue(), removed


def _rebind_links(ws: object) -> None:
    """openpyxl moves cells up when rows go but leaves each link at its old cell reference: set every link again
    on the cell that now holds it."""
    for row in ws.iter_rows():  # type: ignore[attr-defined]
        for cell in row:
            if cell.hyperlink is not None:
                target = cell.hyperlink.target
                cell.hyperlink = None
                cell.hyperlink = target


def _page_without(data: bytes, ids: list[str]) -> tuple[bytes, int]:
    """Rows are counted in the CSVs; a page's rows are the same people."""
    text = data.decode("utf-8")
    for pid in ids:
        text = re.sub(r'<tr data-person="' + re.escape(pid) + r'">.*?</tr>', "", text, flags=re.S)
    return text.encode("utf-8"), 0


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.erasing")
    tmp.write_bytes(data)
    os.replace(tmp, path)
