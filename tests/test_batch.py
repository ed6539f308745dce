"""The batch folder (data_contracts/batch.py): the one writer, the manifest it writes, the reader, and which
folders are batches."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from data_contracts.batch import (
    BATCH_MANIFEST,
    COMPLETE_MARKER,
    BatchRejected,
    batches_in,
    file_sha256,
    is_batch,
    read_batch,
    read_manifest,
    write_batch,
)

TEAMS = pl.DataFrame({"gp_practice": ["A81001", "A81002"], "team_id": ["T1", "T1"], "capacity": [5, 5]})


def test_writer_lists_every_file_with_rows_and_checksum_and_marks_the_manifest_complete(tmp_path: Path) -> None:
    folder = tmp_path / "b1"
    with write_batch(folder, "b1", date(2025, 1, 1), "GBP", "weekly", {"seed": 7}) as batch:
        batch.add_frame("teams", TEAMS, "parquet")
        batch.add_file("opt_outs.csv", "opt_outs", b"person_id,opt_out_type,recorded_date\n", 0)
    body = json.loads((folder / BATCH_MANIFEST).read_text())
    assert list(body) == ["batch_id", "extract_date", "currency", "kind", "files", "seed"]
    assert body["files"] == [
        {"name": "teams.parquet", "table": "teams", "rows": 2, "sha256": file_sha256(folder / "teams.parquet")},
        {"name": "opt_outs.csv", "table": "opt_outs", "rows": 0, "sha256": file_sha256(folder / "opt_outs.csv")},
    ]
    marker = (folder / COMPLETE_MARKER).read_text().strip()
    assert marker == hashlib.sha256((folder / BATCH_MANIFEST).read_bytes()).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b1"]  # no staging left beside it
    manifest = read_manifest(folder)
    assert manifest is not None and manifest.details == {"seed": 7} and manifest.extract_date == date(2025, 1, 1)
    batch_read = read_batch(folder)
    assert set(batch_read.files) == {"teams", "opt_outs"} and batch_read.manifest.currency == "GBP"
    assert batch_read.currency is None  # neither table carries costs: no currency binds the database


def test_an_error_while_writing_leaves_no_folder_and_no_staging(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="disk"), write_batch(tmp_path / "b1", "b1", None, None, None) as batch:
        batch.add_frame("teams", TEAMS)
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_a_folder_that_holds_a_batch_unless_replacing(tmp_path: Path) -> None:
    folder = tmp_path / "b1"
    with write_batch(folder, "b1", None, None, None) as batch:
        batch.add_frame("teams", TEAMS)
    with pytest.raises(FileExistsError, match="not empty"), write_batch(folder, "b1", None, None, None):
        pass
    with write_batch(folder, "b1", None, None, None, replace=True) as batch:
        batch.add_frame("teams", TEAMS.head(1))
    assert pl.read_csv(folder / "teams.csv").height == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b1"]


def test_writer_takes_contract_tables_only_and_each_once(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="not a contract table"),
        write_batch(tmp_path / "b", "b", None, None, None) as w,
    ):
        w.add_frame("patients", TEAMS)
    with pytest.raises(ValueError, match="given twice"), write_batch(tmp_path / "b", "b", None, None, None) as w:
        w.add_frame("teams", TEAMS)
        w.add_frame("teams", TEAMS, "parquet")


def test_which_folders_are_batches(tmp_path: Path) -> None:
    root = tmp_path / "batches"
    with write_batch(root / "b1", "b1", None, None, None) as batch:
        batch.add_frame("teams", TEAMS)
    (root / "b2_arriving").mkdir()  # empty: a batch still being copied
    (root / ".b3.writing").mkdir()  # a writer's staging
    (root / ".b3.writing" / "teams.csv").write_text("x\n")
    (root / "nested" / "b4").mkdir(parents=True)  # a folder of batches, not a batch
    (root / "nested" / "b4" / "teams.csv").write_text("x\n")
    assert is_batch(root / "b1") and is_batch(root / "b2_arriving") and is_batch(root / "nested" / "b4")
    assert not is_batch(root) and not is_batch(root / ".b3.writing") and not is_batch(root / "nested")
    assert batches_in(root) == [root / "b1", root / "b2_arriving"]


def _rewrite_manifest(folder: Path, text: bytes) -> None:
    """Replace a batch's manifest and mark it complete, as a producer writing its own manifest would."""
    (folder / BATCH_MANIFEST).write_bytes(text)
    (folder / COMPLETE_MARKER).write_text(hashlib.sha256(text).hexdigest() + "\n")


def test_manifest_with_a_byte_order_mark_and_a_padded_currency_is_read_as_meant(tmp_path: Path) -> None:
    folder = tmp_path / "b1"
    with write_batch(folder, "b1", date(2025, 1, 1), "GBP", "weekly") as batch:
        batch.add_frame("teams", TEAMS)
    body = json.loads((folder / BATCH_MANIFEST).read_text())
    _rewrite_manifest(folder, b"\xef\xbb\xbf" + json.dumps({**body, "currency": "gbp "}).encode())
    assert read_batch(folder).manifest.currency == "GBP"
    for bad, message in [
        ({"currency": "pounds"}, "currency 'pounds' is not a three-letter code"),
        ({"extract_date": "1-1-1"}, "extract_date '1-1-1' is not a date"),
        ({"files": [{**body["files"][0], "rows": "2"}]}, "files entry 'teams.csv' needs a table, rows >= 0"),
        ({"files": [{"name": "teams.csv"}]}, "a files entry is not {name, table, rows, sha256}"),
    ]:
        _rewrite_manifest(folder, json.dumps({**body, **bad}).encode())
        with pytest.raises(BatchRejected, match=f"^batch.json in b1: {re.escape(message)}"):
            read_batch(folder)
