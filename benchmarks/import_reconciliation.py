"""Reconciliation of the shipped mappings on the shared external samples: where every source row went.

For each sample (the two Synthea sets as delivered and with their encounter classes collapsed to ambulatory,
emergency and inpatient, as a FHIR-derived export of the older kind has them; the OMOP sample), imports it with
its mapping, ingests the batch into a fresh database and prints, as Markdown:

- per source file: rows read, rows taken by each routing rule, rows no rule took (by routing value);
- per contract table: rows in, written, dropped (by reason), then loaded, quarantined (by reason) and excluded;
- the import's warnings.

Usage: python -m benchmarks.import_reconciliation [--shared ../shared/data] [--out FILE]
Figures, not a test (the tests check the same sums on these samples when they are present).
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from datetime import date
from pathlib import Path

import duckdb

from data_contracts.importer import ImportReport, import_source
from data_contracts.sources.synthea import collapse_classes
from pipelines.ingest import ingest_batch


def _quarantine(db: Path) -> dict[str, Counter[str]]:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT table_name, reason, count(*) FROM quarantine GROUP BY ALL").fetchall()
    by_table: dict[str, Counter[str]] = {}
    for table, reason, n in rows:
        by_table.setdefault(table, Counter())[reason] = n
    return by_table


# Each sample's extract date, as the day its activity ends (never taken from the data by the import itself).
EXTRACT_DATES = {
    "massachusetts_1k_2019": date(2019, 4, 29),
    "unmc_nebraska_111": date(2023, 10, 17),
    "eunomia_synthea27nj_5.4": date(2022, 10, 10),
}


def reconcile(name: str, mapping: str, source: Path, work: Path, extract_date: date) -> list[str]:
    slug = "".join(c if c.isalnum() else "_" for c in name)
    batch, db = work / f"{slug}_batch", work / f"{slug}.duckdb"
    report: ImportReport = import_source(mapping, source, batch, extract_date=extract_date)
    ingested = ingest_batch(db, batch)
    quarantined = _quarantine(db)
    lines = [f"### {name} (`{mapping}`)", "", "| source file | rule (table) | rows |", "|---|---|---:|"]
    for f in report.files:
        lines.append(f"| {f.file} | (rows read) | {f.rows_read:,} |")
        for rule in f.rules:
            lines.append(f"| | {rule.rule} ({rule.table}, line {rule.line}) | {rule.rows:,} |")
        for reason, n in f.not_taken.items():
            lines.append(f"| | {reason} | {n:,} |")
    lines += [
        "",
        "| table | rows in | written | dropped (reason) | loaded | quarantined (reason) | excluded |",
        "|---|---:|---:|---|---:|---|---:|",
    ]
    counts = {t.table: t for t in ingested.tables}
    for t in report.tables:
        c = counts.get(t.table)
        dropped = "; ".join(f"{n:,} {reason}" for reason, n in t.dropped.items()) or "0"
        reasons = "; ".join(f"{n:,} {r}" for r, n in sorted(quarantined.get(t.table, Counter()).items())) or "0"
        loaded, excluded = (c.rows_loaded, c.rows_excluded) if c else (0, 0)
        lines.append(
            f"| {t.table} | {t.rows_in:,} | {t.rows_written:,} | {dropped} | {loaded:,} | {reasons} | {excluded:,} |"
        )
    lines += [""] + [f"- warning ({w.kind}): {w.message.split(': ', 1)[1]}" for w in report.warnings]
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    synthea, omop = args.shared / "synthea", args.shared / "omop" / "eunomia_synthea27nj_5.4"
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for folder, mapping in (("massachusetts_1k_2019", "synthea_flat"), ("unmc_nebraska_111", "synthea_native")):
            lines += reconcile(folder, mapping, synthea / folder, work, EXTRACT_DATES[folder])
            collapsed = collapse_classes(synthea / folder, work / f"{folder}_collapsed_source")
            lines += reconcile(f"{folder}, classes collapsed", mapping, collapsed, work, EXTRACT_DATES[folder])
        lines += reconcile("eunomia_synthea27nj_5.4", "omop", omop, work, EXTRACT_DATES["eunomia_synthea27nj_5.4"])
    text = "\n".join(lines)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
