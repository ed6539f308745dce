"""Crashes for real: ingest and publish killed with SIGKILL in a subprocess at chosen points (no exception
handler, no `finally`, no rollback in Python runs), then the next run is checked to find a consistent state and
put it right. What a kill -9 leaves is what a power cut or the OOM killer leaves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.test_ingest import clean_rows, snapshot, write_batch

ROOT = Path(__file__).resolve().parent.parent


def _run_killed(script: str) -> subprocess.CompletedProcess[str]:
    """Run `script` in a fresh interpreter that is expected to kill itself with SIGKILL."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr[-2000:])
    return done


# The point inside ingest's transaction: after this table's rows are written, before the commit.
KILL_POINTS = ["opt_outs", "persons", "apc_spells", "asc_events"]


@pytest.mark.parametrize("table", KILL_POINTS)
def test_ingest_killed_mid_batch_leaves_the_database_as_it_was(tmp_path: Path, table: str) -> None:
    from pipelines.ingest import ingest_batch

    db = tmp_path / "riskstrat.duckdb"
    ingest_batch(db, write_batch(tmp_path, "b1", clean_rows()))
    before = snapshot(db)
    rows = clean_rows()
    rows["persons"].append({**rows["persons"][0], "person_id": "new_person"})
    second = write_batch(tmp_path, "b2", rows)
    _run_killed(
        f"""
        import os, signal
        import pipelines.ingest as ingest

        class Kill(Exception):
            def __init__(self, *args):
                os.kill(os.getpid(), signal.SIGKILL)

        ingest.InjectedFailure = Kill  # the test hook now kills the process where it would have raised
        ingest.ingest_batch({str(db)!r}, {str(second)!r}, fail_after_table={table!r})
        """
    )
    assert snapshot(db) == before  # nothing of b2, and b1 intact
    report = ingest_batch(db, second)  # the next run loads it whole
    assert report.status == "loaded"
    for t in report.tables:
        assert t.rows_read == t.rows_loaded + t.rows_quarantined + t.rows_excluded, t


def test_ingest_killed_on_a_fresh_database_leaves_nothing_loaded(tmp_path: Path) -> None:
    from pipelines.ingest import ingest_batch

    db = tmp_path / "riskstrat.duckdb"
    batch = write_batch(tmp_path, "b1", clean_rows())
    _run_killed(
        f"""
        import os, signal
        import pipelines.ingest as ingest

        class Kill(Exception):
            def __init__(self, *args):
                os.kill(os.getpid(), signal.SIGKILL)

        ingest.InjectedFailure = Kill
        ingest.ingest_batch({str(db)!r}, {str(batch)!r}, fail_after_table="apc_spells")
        """
    )
    assert not snapshot(db).get("batches")
    assert ingest_batch(db, batch).status == "loaded"


_PUBLISH = """
import os, signal
from pathlib import Path
import tests.test_publish as scenario
import pipelines.publish.folder as folder

{patch}
scenario._publish(Path({out!r}))
"""

_KILL_AFTER_FILES = """
written = []
original = folder.Folder.write

def write(self, *args, **kwargs):
    original(self, *args, **kwargs)
    written.append(1)
    if len(written) == {files}:
        os.kill(os.getpid(), signal.SIGKILL)

folder.Folder.write = write
"""

_KILL_BETWEEN_RENAMES = """
def swap(staging, dest):
    os.rename(dest, dest.parent / f".{dest.name}.old-5ea1ed00")
    os.kill(os.getpid(), signal.SIGKILL)  # the new run never moves in

folder._swap_into_place = swap
"""


@pytest.mark.parametrize("files", [1, 7])
def test_publish_killed_while_writing_keeps_last_weeks_files_and_the_next_publish_cleans_up(
    tmp_path: Path, files: int
) -> None:
    from tests.test_publish import AS_OF, _publish

    _publish(tmp_path)
    week = tmp_path / AS_OF.isoformat()
    manifest = (week / "manifest.json").read_bytes()
    _run_killed(_PUBLISH.format(patch=_KILL_AFTER_FILES.format(files=files), out=str(tmp_path)))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers and all(".tmp-" in name for name in leftovers)  # a half-built folder, hidden
    assert (week / "manifest.json").read_bytes() == manifest  # the published week is untouched
    _publish(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [AS_OF.isoformat()]
    listed = json.loads((week / "manifest.json").read_text())["files"]
    assert all((week / f["path"]).is_file() for f in listed)


def test_publish_killed_between_the_two_renames_is_restored_by_the_next(tmp_path: Path) -> None:
    from tests.test_publish import AS_OF, _publish

    _publish(tmp_path)
    week = tmp_path / AS_OF.isoformat()
    manifest = (week / "manifest.json").read_bytes()
    _run_killed(_PUBLISH.format(patch=_KILL_BETWEEN_RENAMES, out=str(tmp_path)))
    assert not week.exists()  # the one instant a run folder is missing: the old run moved aside
    from pipelines.publish.folder import clean_leftovers

    staging = sorted(p.name for p in tmp_path.iterdir() if ".tmp-" in p.name)
    assert staging  # the new run, complete but never moved in
    assert clean_leftovers(tmp_path) == [
        f"restored {week.name} from .{week.name}.old-5ea1ed00",
        *(f"removed {name}" for name in staging),
    ]
    assert (week / "manifest.json").read_bytes() == manifest
    _publish(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [AS_OF.isoformat()]
