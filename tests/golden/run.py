"""The golden run: a small, fully seeded pipeline (generate, ingest, train, score, publish) in plain Python,
reduced to a digest of everything it writes that a person or a later run reads.

`tests/test_golden.py` compares a fresh run with `tests/golden/digest.json`, so a refactor that claims to keep
behaviour can show it did. Regenerate only on purpose, when behaviour is meant to change, and say why in the
commit:

    .venv/bin/python -m tests.golden.run --write
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import duckdb

DIGEST_PATH = Path(__file__).with_name("digest.json")

GOLDEN_OVERRIDES: dict[str, Any] = {
    "synth": {"people": 4000, "weekly_batches": 1, "people_per_practice": 700, "truth_replicates": 8},
    "training": {
        "bootstrap_samples": 20,
        "explain_sample_rows": 100,
        "num_boost_round": 60,
        "lgbm": {"num_threads": 1},
    },
}

# Files whose bytes carry wall-clock time or absolute paths: digested after masking those.
_VOLATILE = [
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:?\d{2}|Z)?"), "<time>"),
    (re.compile(r"(/[^\s\"'<>]*)?/(tmp|var/folders)/[^\s\"'<>]*"), "<path>"),
    (re.compile(r"(\"train_seconds\": |training time )[0-9.]+"), r"\1<seconds>"),
    # Checksums in manifests cover files that hold times; every file is digested on its own anyway.
    (re.compile(r"\b[0-9a-f]{64}\b"), "<sha256>"),
    # A workbook's zipped size varies by a few bytes with the creation time it holds.
    (re.compile(r'(\.xlsx",\s*"rows": \d+,\s*"sha256": "[^"]*",\s*"bytes": )\d+'), r"\1<bytes>"),
]


def _masked_text(path: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace")
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def _file_digest(path: Path) -> str:
    if path.suffix in (".csv", ".html", ".json", ".jsonl", ".md", ".txt", ".svg", ".css", ".js"):
        return hashlib.sha256(_masked_text(path).encode()).hexdigest()
    if path.suffix == ".xlsx":
        return _workbook_digest(path)
    if path.suffix == ".png":
        return "png"  # matplotlib output varies with fonts and versions; its presence is what is checked
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _workbook_digest(path: Path) -> str:
    from openpyxl import load_workbook

    book = load_workbook(path)
    cells = [
        (sheet.title, cell.coordinate, str(cell.value))
        for sheet in book.worksheets
        for row in sheet.iter_rows()
        for cell in row
        if cell.value is not None
    ]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()


def _table_digest(con: duckdb.DuckDBPyConnection, table: str) -> str:
    columns = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
    if not columns:
        return "empty"
    rows = con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def run_golden(home: Path) -> dict[str, str]:
    """Run the pipeline under `home` and return {artifact: digest}."""
    from data_contracts.synthetic import generate_population
    from pipelines.ingest import ingest_batch
    from pipelines.publish import publish
    from pipelines.scoring import score_population
    from pipelines.settings import load_settings
    from pipelines.training import train_all
    from pipelines.warehouse import store_scores

    settings = load_settings(None, {**GOLDEN_OVERRIDES, "home": str(home)})
    generated = generate_population(settings.home / "synthetic", settings.synth, settings.outcomes, settings.seed)
    for batch_dir in sorted(generated.batch_dirs):
        ingest_batch(settings.db, batch_dir, settings.ingest)
    train_all(settings, generated.truth_path)
    result = score_population(settings)
    store_scores(settings.db, result)
    publish(settings.outputs, result.publication)
    return digest(home)


def digest(home: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    with duckdb.connect(str(home / "riskstrat.duckdb"), read_only=True) as con:
        for (table,) in con.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall():
            if table in ("batches", "ingest_log"):
                continue  # carry load times
            out[f"db/{table}"] = _table_digest(con, table)
        out["db/ingest_log counts"] = hashlib.sha256(
            repr(
                con.execute(
                    "SELECT batch_id, table_name, rows_read, rows_loaded, rows_quarantined, rows_excluded, "
                    "rows_removed FROM ingest_log ORDER BY ALL"
                ).fetchall()
            ).encode()
        ).hexdigest()
    for folder in ("registry", "outputs"):
        for path in sorted((home / folder).rglob("*")):
            if path.is_file():
                out[str(path.relative_to(home))] = _file_digest(path)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="record this run as the golden digest")
    parser.add_argument("--home", type=Path, help="run here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run_golden(args.home or Path(tmp))
    if args.write:
        DIGEST_PATH.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        print(f"wrote {len(result)} digests to {DIGEST_PATH}")
    else:
        golden = json.loads(DIGEST_PATH.read_text())
        changed = sorted(k for k in golden.keys() | result.keys() if golden.get(k) != result.get(k))
        print("\n".join(changed) if changed else f"all {len(result)} digests equal")


if __name__ == "__main__":
    main()
