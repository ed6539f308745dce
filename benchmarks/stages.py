"""One benchmark stage per process: `python -m benchmarks.stages STAGE '{"json": "arguments"}'`.

`benchmarks.run` starts each stage in a fresh interpreter so that its wall time and peak resident memory are
its own (read by the parent with `os.wait4`). A stage prints one JSON line, prefixed `RESULT `, with the
seconds spent on the work itself (imports and interpreter start excluded) and a few counts.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

RESULT_PREFIX = "RESULT "


def _settings(home: str, db: str) -> Any:
    from pipelines.settings import Settings

    # Built directly (not load_settings): a riskstrat.toml in the working folder must not change a benchmark.
    return Settings(home=Path(home), db_path=Path(db))


def generate(people: int, seed: int, out_dir: str) -> dict[str, Any]:
    """The synthetic population: 3 years of history in one batch plus one weekly batch."""
    from data_contracts.outcomes import OutcomeSettings
    from data_contracts.settings import SynthSettings
    from data_contracts.synthetic import generate_population

    started = time.perf_counter()
    result = generate_population(
        Path(out_dir), SynthSettings(people=people, history_years=3, weekly_batches=1), OutcomeSettings(), seed=seed
    )
    return {
        "work_seconds": time.perf_counter() - started,
        "batch_dirs": [str(p) for p in result.batch_dirs],
        "rows": result.row_counts,
    }


def ingest(db: str, batch_dir: str) -> dict[str, Any]:
    """Validated, atomic ingest of one batch folder."""
    from pipelines.ingest import ingest_batch

    started = time.perf_counter()
    report = ingest_batch(Path(db), Path(batch_dir))
    return {
        "work_seconds": time.perf_counter() - started,
        "status": report.status,
        "rows_loaded": sum(t.rows_loaded for t in report.tables),
        "rows_read": sum(t.rows_read for t in report.tables),
    }


def features(db: str) -> dict[str, Any]:
    """Every catalogue feature as of the latest extract date for everyone eligible (warehouse read included)."""
    from features.build import build_features
    from pipelines.warehouse import latest_extract_date, read_tables

    started = time.perf_counter()
    as_of = latest_extract_date(Path(db))
    assert as_of is not None
    tables = read_tables(Path(db))
    read_seconds = time.perf_counter() - started
    frame = build_features(tables, as_of).collect()
    return {
        "work_seconds": time.perf_counter() - started,
        "read_seconds": read_seconds,
        "as_of": str(as_of),
        "people": frame.height,
        "columns": frame.width - 1,
    }


def floor(db: str, per_person: bool = False) -> dict[str, Any]:
    """The floor: one DuckDB scan of every event row the feature build reads, a count and a sum per table
    (`benchmarks.peer.floor_scan`), or per person per table (`floor_grouped`)."""
    from benchmarks.peer import floor_grouped, floor_scan
    from pipelines.warehouse import latest_extract_date

    as_of = latest_extract_date(Path(db))
    assert as_of is not None
    started = time.perf_counter()
    counted = floor_grouped(Path(db), as_of) if per_person else floor_scan(Path(db), as_of)
    return {
        "work_seconds": time.perf_counter() - started,
        "person_groups" if per_person else "event_rows": counted,
        "as_of": str(as_of),
    }


def peer(db: str, out: str, implementation: str) -> dict[str, Any]:
    """The peer's 12-month count and cost columns by riskstrat's own feature functions, by DuckDB SQL or by
    plain pandas."""
    from benchmarks.peer import pandas_window_features, riskstrat_window_features, sql_window_features
    from pipelines.warehouse import latest_extract_date

    as_of = latest_extract_date(Path(db))
    assert as_of is not None
    started = time.perf_counter()
    if implementation in ("riskstrat", "sql"):
        frame = (riskstrat_window_features if implementation == "riskstrat" else sql_window_features)(Path(db), as_of)
        seconds = time.perf_counter() - started
        frame.write_parquet(out)
        return {"work_seconds": seconds, "people": frame.height}
    pandas_frame = pandas_window_features(Path(db), as_of)
    seconds = time.perf_counter() - started
    pandas_frame.to_parquet(out)
    return {"work_seconds": seconds, "people": len(pandas_frame)}


def train(db: str, home: str, truth: str | None) -> dict[str, Any]:
    """Train the four outcome models on the stacked index dates (baselines, bootstrap evaluation, registry)."""
    from pipelines.training import train_all

    settings = _settings(home, db)
    started = time.perf_counter()
    report = train_all(settings, Path(truth) if truth else None, force=True)
    return {
        "work_seconds": time.perf_counter() - started,
        "rows": report.rows,
        "index_dates": [str(d) for d in report.plan.index_dates],
        "parts_seconds": {k: round(v, 2) for k, v in report.seconds.items()},
    }


def weekly(db: str, home: str, batch_dir: str) -> dict[str, Any]:
    """The weekly refresh: ingest the new batch, build features, score, explain the listed people, store the
    scores and publish every team's outputs."""
    from pipelines.ingest import ingest_batch
    from pipelines.publish import publish
    from pipelines.scoring import score_population
    from pipelines.warehouse import store_scores

    settings = _settings(home, db)
    parts: dict[str, float] = {}
    started = time.perf_counter()
    ingest_batch(Path(db), Path(batch_dir), settings.ingest)
    parts["ingest"] = time.perf_counter() - started
    step = time.perf_counter()
    result = score_population(settings)
    parts["score_and_explain"] = time.perf_counter() - step
    step = time.perf_counter()
    store_scores(settings.db, result)
    parts["store"] = time.perf_counter() - step
    step = time.perf_counter()
    report = publish(settings.outputs, result.publication)
    parts["publish"] = time.perf_counter() - step
    return {
        "work_seconds": time.perf_counter() - started,
        "parts_seconds": {k: round(v, 2) for k, v in parts.items()},
        "people_scored": result.population.height,
        "people_listed": report.people_listed,
        "teams": report.teams,
        "files": len(report.files),
    }


STAGES: dict[str, Callable[..., dict[str, Any]]] = {
    "generate": generate,
    "ingest": ingest,
    "features": features,
    "floor": floor,
    "peer": peer,
    "train": train,
    "weekly": weekly,
}


def _json_default(value: Any) -> Any:
    if isinstance(value, (date, Path)):
        return str(value)
    raise TypeError(type(value))


def main() -> None:
    stage, arguments = sys.argv[1], json.loads(sys.argv[2])
    result = STAGES[stage](**arguments)
    print(RESULT_PREFIX + json.dumps(result, default=_json_default), flush=True)


if __name__ == "__main__":
    main()
