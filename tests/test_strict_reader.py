"""The strict reader: a table file is read as meant or refused with the reason and line numbers, never
half-read (issue 17, silent misreads and unclear refusals). One test per class, named after it."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_contracts.tables import TABLES
from data_contracts.validation import FileRejected, read_table_file, validate_table

HEADER = "event_id,person_id,event_date,event_type,cost\n"
ROWS = ["e1,alive_person,2024-06-01,face_to_face,30.5\n", "e2,alive_person,2024-06-02,telephone,12.86\n"]
GP = TABLES["gp_events"]


def _file(tmp_path: Path, text: str | bytes, name: str = "gp_events.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def _refused(path: Path) -> str:
    with pytest.raises(FileRejected) as refused:
        read_table_file(path, GP)
    message = str(refused.value)
    assert "\n" not in message and "alive_person" not in message  # one line, no row values
    return message


def test_a_whole_file_reads(tmp_path: Path) -> None:
    frame = read_table_file(_file(tmp_path, HEADER + "".join(ROWS)), GP)
    assert frame.height == 2 and frame["cost"].to_list() == ["30.5", "12.86"]


def test_csv_cut_in_its_last_row_is_refused(tmp_path: Path) -> None:
    # Before: the cut row loaded with nulls and its cost imputed (12.86 stored as 12.0).
    cut = HEADER + ROWS[0] + ROWS[1][: ROWS[1].index("telephone")]
    assert "1 row(s) with more or fewer fields than the header's 5 (line 3)" in _refused(_file(tmp_path, cut))


def test_short_row_in_the_middle_is_refused(tmp_path: Path) -> None:
    text = HEADER + ROWS[0] + "e9,alive_person,2024-06-03\n" + ROWS[1]
    assert "(line 3)" in _refused(_file(tmp_path, text))


def test_a_row_with_an_extra_field_is_refused(tmp_path: Path) -> None:
    text = HEADER + ROWS[0].replace("30.5", "30,5") + ROWS[1]
    assert "(line 2)" in _refused(_file(tmp_path, text))


def test_utf16_file_is_refused_as_utf16(tmp_path: Path) -> None:
    # Before: "missing required columns".
    path = _file(tmp_path, (HEADER + ROWS[0]).encode("utf-16"))
    assert "is UTF-16 text; save it as UTF-8" in _refused(path)


def test_latin1_file_is_refused_with_its_line(tmp_path: Path) -> None:
    text = (HEADER + ROWS[0] + "e3,alive_person,2024-06-04,face_to_face,1.0\n").replace("e3", "é3")
    assert "is not UTF-8 (byte 0xE9 on line 3" in _refused(_file(tmp_path, text.encode("latin-1")))


def test_wrong_delimiter_gets_a_hint(tmp_path: Path) -> None:
    text = (HEADER + ROWS[0]).replace(",", ";")
    assert "the header is one column that semicolons would split" in _refused(_file(tmp_path, text))


def test_a_quote_left_open_is_refused(tmp_path: Path) -> None:
    text = HEADER + ROWS[0] + 'e3,alive_person,2024-06-04,"face_to_face,1.0\n'
    assert "cannot be read as CSV" in _refused(_file(tmp_path, text))


def test_a_utf8_bom_and_gzip_are_read(tmp_path: Path) -> None:
    path = _file(tmp_path, gzip.compress(("\ufeff" + HEADER + "".join(ROWS)).encode("utf-8")), "gp_events.csv.gz")
    assert read_table_file(path, GP).height == 2


def test_parquet_date_out_of_range_is_quarantined_not_a_panic(tmp_path: Path) -> None:
    # Before: Polars panicked ("out-of-range date") and the run crashed.
    path = tmp_path / "gp_events.parquet"
    pq.write_table(
        pa.table(
            {
                "event_id": ["e1", "e2"],
                "person_id": ["alive_person", "alive_person"],
                "event_date": pa.array([date(2024, 6, 1), None], pa.date32()),
                "event_type": ["face_to_face", "telephone"],
            }
        ),
        path,
    )
    table = pq.read_table(path)
    days = pa.array([2**31 - 1, 19876], pa.int32()).cast(pa.date32())
    pq.write_table(table.set_column(2, "event_date", days), path)
    raw = read_table_file(path, GP)
    persons = pl.DataFrame({"person_id": ["alive_person"], "birth_year": [1950], "birth_month": [1]})
    result = validate_table(raw, GP, date(2025, 1, 1), persons, pl.Series([], dtype=pl.String))
    assert result.rows_valid == 1
    assert result.quarantine.select("reason", "column_name").rows() == [("bad_type", "event_date")]
