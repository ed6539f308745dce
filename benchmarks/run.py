"""Population-scale benchmark: every stage's wall time and peak memory at one or more population sizes.

    python -m benchmarks.run                                  # 100,000 people (about 5 minutes)
    python -m benchmarks.run --people 1000000                 # one size
    python -m benchmarks.run --people 100000 300000 1000000   # the scaling curve (about an hour here)

For each size: generate a synthetic population with 3 years of history and one new weekly batch, then run
each stage in a fresh Python process (`benchmarks.stages`) and read that process's wall time and peak
resident set (`os.wait4`):

1. initial ingest of the 3-year history batch into an empty database;
2. incremental ingest of the weekly batch into a copy of that database;
3. the feature build as of the latest date for everyone (warehouse read included);
4. training of the outcome models on the stacked index dates (from the history database);
5. the weekly refresh on another copy of the history database: ingest the weekly batch, build features,
   score, explain everyone on a list, store the scores and publish every team's outputs.

In the same run: the floor (`benchmarks.peer.floor_scan`) and the pandas peer (`benchmarks.peer`), and, when
the largest size holds more people than `--history-comparison`, the same weekly batch loaded into a database
holding that many people's history and into one holding the largest population's history (see
`history_comparison`). Results go to `benchmarks/results/` as JSON and Markdown; `--readme` also replaces the
latest table in `benchmarks/README.md`. Generated data lives under `--data-dir` (default /work/bench-data),
outside the repository. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.peer import compare
from benchmarks.stages import RESULT_PREFIX
from data_contracts.batch import BATCH_MANIFEST, batches_in, read_manifest, write_batch
from data_contracts.tables import TABLES

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"
README = REPO / "benchmarks" / "README.md"
TABLE_START, TABLE_END = "<!-- latest results: start -->", "<!-- latest results: end -->"
GIB = 1024**3

STAGE_TITLES: dict[str, str] = {
    "generate": "generate population (not a target)",
    "ingest_history": "1. initial ingest, 3-year history",
    "ingest_weekly": "2. incremental ingest, one week",
    "features": "3. feature build, everyone, latest date",
    "train": "4. training, all outcome models",
    "weekly_refresh": "5. weekly refresh (ingest + features + score + SHAP + publish)",
    "floor": "floor: DuckDB count + sum per table",
    "floor_per_person": "per-person floor: DuckDB count + sum per person per table",
    "peer_riskstrat": "peer columns by riskstrat",
    "peer_pandas": "peer columns by pandas",
    "peer_sql": "peer columns by DuckDB SQL",
}
TARGETS = {
    "weekly_refresh_seconds": 300.0,
    "weekly_refresh_peak_gib": 8.0,
    "train_seconds": 900.0,
    "floor_ratio": 3.0,
    "pandas_speedup": 5.0,
    "sql_peer_ratio": 1.0,  # issue 18: riskstrat no slower than DuckDB SQL on the same columns
    "history_ratio": 1.5,
}


@dataclass
class Measured:
    """One stage in one process: wall time of the process, time of the work inside it, peak resident set."""

    stage: str
    seconds: float
    work_seconds: float
    peak_rss_bytes: int
    details: dict[str, Any] = field(default_factory=dict)


def run_stage(stage: str, arguments: dict[str, Any], log_path: Path, name: str | None = None) -> Measured:
    """Run `benchmarks.stages STAGE` in a fresh interpreter; its own peak RSS comes from wait4's rusage."""
    command = [sys.executable, "-m", "benchmarks.stages", stage, json.dumps(arguments)]
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n=== {name or stage} {json.dumps(arguments)}\n")
        log.flush()
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True)
        assert process.stdout is not None
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        log.write(output)
    if process.returncode != 0:
        raise RuntimeError(f"stage {name or stage} failed (exit {process.returncode}); see {log_path}")
    line = next(x for x in reversed(output.splitlines()) if x.startswith(RESULT_PREFIX))
    details = json.loads(line[len(RESULT_PREFIX) :])
    measured = Measured(
        stage=name or stage,
        seconds=seconds,
        work_seconds=float(details.pop("work_seconds")),
        peak_rss_bytes=usage.ru_maxrss * 1024,  # kilobytes on Linux
        details=details,
    )
    print(
        f"  {measured.stage:<16} {measured.seconds:8.1f} s  (work {measured.work_seconds:8.1f} s)  "
        f"peak {measured.peak_rss_bytes / GIB:5.2f} GiB",
        flush=True,
    )
    return measured


def median_of(runs: list[Measured]) -> Measured:
    """The run with the median work time (its own wall time and memory), the others' times in details."""
    ordered = sorted(runs, key=lambda m: m.work_seconds)
    chosen = ordered[len(ordered) // 2]
    chosen.details["repeats_work_seconds"] = [round(m.work_seconds, 3) for m in runs]
    return chosen


def fresh_copy(source: Path, target: Path) -> Path:
    """A copy of a closed database file (set-up, not measured)."""
    target.unlink(missing_ok=True)
    shutil.copyfile(source, target)
    return target


def set_list_share(history_batch: Path, share: float) -> None:
    """Size every team's list at `share` of its registered people (the generator gives teams about 2%), so the
    weekly refresh explains and publishes the top `share` of the population, as the issue specifies."""
    persons = pl.read_parquet(history_batch / "persons.parquet", columns=["gp_practice"])
    teams = pl.read_parquet(history_batch / "teams.parquet")
    registered = persons.join(teams.select("gp_practice", "team_id"), on="gp_practice").group_by("team_id").len()
    teams = (
        teams.drop("capacity")
        .join(registered, on="team_id", how="left")
        .with_columns(capacity=(pl.col("len").fill_null(0) * share).ceil().cast(pl.Int64))
        .select(teams.columns)
    )
    _rewrite_batch(history_batch, history_batch, lambda table, path: teams if table == "teams" else None)


def _rewrite_batch(source: Path, target: Path, change: Callable[[str, Path], pl.DataFrame | None]) -> None:
    """Write `target` (replacing it) through the one batch writer: source's tables, each as `change` gives it
    or, where it gives None, copied unchanged."""
    manifest = read_manifest(source)
    assert manifest is not None, f"{source} has no {BATCH_MANIFEST}"
    with write_batch(
        target, manifest.batch_id, manifest.extract_date, manifest.currency, manifest.kind, manifest.details, True
    ) as batch:
        for listed in manifest.files:
            path = source / listed.name
            frame = change(listed.table, path)
            if frame is None:
                batch.add_copy(path, listed.table, listed.rows)
            else:
                batch.add_frame(listed.table, frame, "parquet")


def benchmark_size(
    people: int, seed: int, data_dir: Path, repeats: int, reuse: bool, list_share: float
) -> dict[str, Any]:
    root = data_dir / str(people)
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / "benchmark.log"
    log_path.unlink(missing_ok=True)
    print(f"{people:,} people -> {root}", flush=True)
    stages: dict[str, Measured] = {}

    synthetic = root / "synthetic"
    previous = root / "generate.json"
    if reuse and previous.exists() and json.loads(previous.read_text())["seed"] == seed:
        stages["generate"] = Measured(**json.loads(previous.read_text())["measured"])
        print("  generate         reused", flush=True)
    else:
        stages["generate"] = run_stage(
            "generate", {"people": people, "seed": seed, "out_dir": str(synthetic)}, log_path
        )
        previous.write_text(json.dumps({"seed": seed, "measured": asdict(stages["generate"])}))
    history_batch, weekly_batch = (str(p) for p in batches_in(synthetic / "batches"))
    set_list_share(Path(history_batch), list_share)

    history_db = root / "history.duckdb"
    history_db.unlink(missing_ok=True)
    stages["ingest_history"] = run_stage(
        "ingest", {"db": str(history_db), "batch_dir": history_batch}, log_path, "ingest_history"
    )
    latest_db = fresh_copy(history_db, root / "latest.duckdb")
    stages["ingest_weekly"] = run_stage(
        "ingest", {"db": str(latest_db), "batch_dir": weekly_batch}, log_path, "ingest_weekly"
    )
    stages["features"] = median_of([run_stage("features", {"db": str(latest_db)}, log_path) for _ in range(repeats)])
    stages["floor"] = median_of([run_stage("floor", {"db": str(latest_db)}, log_path) for _ in range(repeats)])
    stages["floor_per_person"] = median_of(
        [
            run_stage("floor", {"db": str(latest_db), "per_person": True}, log_path, "floor_per_person")
            for _ in range(repeats)
        ]
    )
    peer_ours, peer_theirs = root / "peer_riskstrat.parquet", root / "peer_pandas.parquet"
    stages["peer_riskstrat"] = median_of(
        [
            run_stage(
                "peer",
                {"db": str(latest_db), "out": str(peer_ours), "implementation": "riskstrat"},
                log_path,
                "peer_riskstrat",
            )
            for _ in range(repeats)
        ]
    )
    stages["peer_pandas"] = run_stage(
        "peer", {"db": str(latest_db), "out": str(peer_theirs), "implementation": "pandas"}, log_path, "peer_pandas"
    )
    agreement = compare(peer_ours, peer_theirs)
    print(f"  peer agreement: {agreement}", flush=True)
    peer_sql = root / "peer_sql.parquet"
    stages["peer_sql"] = median_of(
        [
            run_stage(
                "peer", {"db": str(latest_db), "out": str(peer_sql), "implementation": "sql"}, log_path, "peer_sql"
            )
            for _ in range(repeats)
        ]
    )
    sql_agreement = compare(peer_ours, peer_sql)
    print(f"  SQL peer agreement: {sql_agreement}", flush=True)

    home = root / "home"
    shutil.rmtree(home, ignore_errors=True)
    stages["train"] = run_stage(
        "train", {"db": str(history_db), "home": str(home), "truth": str(synthetic / "truth.parquet")}, log_path
    )
    weekly_db = fresh_copy(history_db, root / "weekly.duckdb")
    stages["weekly_refresh"] = run_stage(
        "weekly", {"db": str(weekly_db), "home": str(home), "batch_dir": weekly_batch}, log_path, "weekly_refresh"
    )
    return {
        "people": people,
        "rows": stages["generate"].details.get("rows", {}),
        "stages": {name: asdict(m) for name, m in stages.items()},
        "peer_agreement": agreement,
        "sql_peer_agreement": sql_agreement,
        # above 1: riskstrat is slower than the SQL peer on the same columns (the target is at most 1)
        "sql_peer_ratio": stages["peer_riskstrat"].work_seconds / stages["peer_sql"].work_seconds,
        "sql_peer_ratio_full_build": stages["features"].work_seconds / stages["peer_sql"].work_seconds,
        "floor_ratio": stages["features"].work_seconds / stages["floor"].work_seconds,
        "floor_ratio_per_person": stages["features"].work_seconds / stages["floor_per_person"].work_seconds,
        "pandas_speedup": stages["peer_pandas"].work_seconds / stages["peer_riskstrat"].work_seconds,
        "pandas_speedup_full_build": stages["peer_pandas"].work_seconds / stages["features"].work_seconds,
    }


def _subset_batch(source: Path, target: Path, people: pl.DataFrame) -> None:
    """The batch folder restricted to `people` (tables without person_id are copied whole)."""

    def restricted(table: str, path: Path) -> pl.DataFrame | None:
        if "person_id" not in {c.name for c in TABLES[table].input_columns}:
            return None
        return pl.read_parquet(path).join(people, on="person_id", how="semi")

    _rewrite_batch(source, target, restricted)


def history_comparison(large: int, small: int, data_dir: Path, repeats: int) -> dict[str, Any]:
    """The same weekly batch into a database holding `small` people's history and into one holding `large`.

    "The same batch" is the large population's weekly batch restricted to `small` of its people (the first
    by pseudonymous id, i.e. a random sample). The small database holds the history of exactly those people,
    the large one everyone's, so in both the batch's rows continue a history the database already holds and
    only the amount of history differs. Each load goes into a fresh copy of its database; median of repeats.
    """
    root = data_dir / str(large)
    work = root / f"history_comparison_{small}"
    work.mkdir(exist_ok=True)
    log_path = work / "benchmark.log"
    log_path.unlink(missing_ok=True)
    print(f"same weekly batch into {small:,} vs {large:,} people's history -> {work}", flush=True)
    history_batch, weekly_batch = batches_in(root / "synthetic" / "batches")
    people = pl.read_parquet(history_batch / "persons.parquet", columns=["person_id"]).sort("person_id").head(small)
    small_history, small_weekly = work / "batches" / history_batch.name, work / "batches" / weekly_batch.name
    _subset_batch(history_batch, small_history, people)
    _subset_batch(weekly_batch, small_weekly, people)
    small_db = work / "history_small.duckdb"
    small_db.unlink(missing_ok=True)
    setup = run_stage("ingest", {"db": str(small_db), "batch_dir": str(small_history)}, log_path, "setup_small")
    into_small, into_large = [], []
    for _ in range(repeats):
        target = fresh_copy(small_db, work / "target.duckdb")
        into_small.append(run_stage("ingest", {"db": str(target), "batch_dir": str(small_weekly)}, log_path, "small"))
        target = fresh_copy(root / "history.duckdb", work / "target.duckdb")
        into_large.append(run_stage("ingest", {"db": str(target), "batch_dir": str(small_weekly)}, log_path, "large"))
    (work / "target.duckdb").unlink(missing_ok=True)
    small_run, large_run = median_of(into_small), median_of(into_large)
    return {
        "small_history_people": small,
        "large_history_people": large,
        "batch_rows": small_run.details["rows_read"],
        "setup_small_history_ingest": asdict(setup),
        "into_small": asdict(small_run),
        "into_large": asdict(large_run),
        "history_ratio": large_run.work_seconds / small_run.work_seconds,
    }


# ------------------------------------------------------------------------------------------------- reporting


def machine() -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu = next(
            (line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line), cpu
        )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory / GIB, 1),
        "python": platform.python_version(),
    }


def versions() -> dict[str, str]:
    packages = ("polars", "duckdb", "pyarrow", "numpy", "pandas", "lightgbm", "scikit-learn", "shap", "openpyxl")
    found = {name: metadata.version(name) for name in packages}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if commit.returncode != 0:
        # An exported tree (`git archive HEAD | tar -x`): a frozen copy, so a long run is not measuring code that
        # others change while it runs. RISKSTRAT_COMMIT names the commit it was exported from.
        found["riskstrat_commit"] = f"{os.environ.get('RISKSTRAT_COMMIT', 'unknown')} (exported tree)"
        return found
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True)
    found["riskstrat_commit"] = commit.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    return found


def scaling_exponent(sizes: list[dict[str, Any]], stage: str) -> float | None:
    """Slope of log(time) against log(people) between the smallest and largest size (1 = linear)."""
    import math

    if len(sizes) < 2:
        return None
    first, last = sizes[0], sizes[-1]
    t0, t1 = first["stages"][stage]["work_seconds"], last["stages"][stage]["work_seconds"]
    return math.log(t1 / t0) / math.log(last["people"] / first["people"])


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target against the largest size measured (the targets are stated for 1,000,000 people)."""
    largest = result["sizes"][-1]
    stage = largest["stages"]
    rows = [
        ("weekly refresh time", stage["weekly_refresh"]["seconds"], "<=", TARGETS["weekly_refresh_seconds"], "s"),
        ("weekly refresh peak memory", stage["weekly_refresh"]["peak_rss_bytes"] / GIB, "<=", 8.0, "GiB"),
        ("training time", stage["train"]["seconds"], "<=", TARGETS["train_seconds"], "s"),
        ("features / floor (count + sum per table)", largest["floor_ratio"], "<=", TARGETS["floor_ratio"], "x"),
        ("features / per-person floor", largest["floor_ratio_per_person"], "<=", TARGETS["floor_ratio"], "x"),
        ("pandas peer / riskstrat", largest["pandas_speedup"], ">=", TARGETS["pandas_speedup"], "x"),
        ("riskstrat / DuckDB-SQL peer", largest["sql_peer_ratio"], "<=", TARGETS["sql_peer_ratio"], "x"),
    ]
    if result.get("history_comparison"):
        rows.append(
            (
                "incremental ingest, large / small history",
                result["history_comparison"]["history_ratio"],
                "<=",
                TARGETS["history_ratio"],
                "x",
            )
        )
    for name in ("ingest_history", "ingest_weekly", "features", "train", "weekly_refresh"):
        exponent = result["scaling_exponents"].get(name)
        if exponent is not None:
            rows.append((f"scaling exponent, {STAGE_TITLES[name].split(',')[0]}", exponent, "<=", 1.1, ""))
    out = []
    for name, value, op, limit, unit in rows:
        met = value <= limit if op == "<=" else value >= limit
        out.append({"target": name, "value": value, "op": op, "limit": limit, "unit": unit, "met": met})
    return out


def markdown(result: dict[str, Any]) -> str:
    sizes = result["sizes"]
    lines = [
        f"Run {result['date']} on {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"{result['machine']['memory_gib']} GiB, {result['machine']['platform']}; Python "
        f"{result['machine']['python']}; " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
        "",
        "Wall time of each stage's own process (interpreter start and imports included) and its peak resident set;"
        " features, floor and riskstrat's peer columns are the median of "
        f"{result['repeats']} runs. Ratios use the time inside the process (the work itself).",
        "",
        "| stage | " + " | ".join(f"{s['people']:,} people" for s in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for name, title in STAGE_TITLES.items():
        cells = []
        for size in sizes:
            m = size["stages"][name]
            cells.append(f"{_duration(m['seconds'])} / {m['peak_rss_bytes'] / GIB:.2f} GiB")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines.append(
        "| floor ratio (features / floor, work time) | "
        + " | ".join(
            f"{s['floor_ratio']:.1f}x ({s['stages']['features']['work_seconds']:.2f} s / "
            f"{s['stages']['floor']['work_seconds']:.3f} s)"
            for s in sizes
        )
        + " |"
    )
    lines.append(
        "| per-person floor ratio (features / per-person floor) | "
        + " | ".join(
            f"{s['floor_ratio_per_person']:.1f}x ({s['stages']['features']['work_seconds']:.2f} s / "
            f"{s['stages']['floor_per_person']['work_seconds']:.2f} s)"
            for s in sizes
        )
        + " |"
    )
    lines.append(
        "| pandas peer / riskstrat (same columns) | "
        + " | ".join(
            f"riskstrat {s['pandas_speedup']:.1f}x faster ({s['stages']['peer_pandas']['work_seconds']:.1f} s / "
            f"{s['stages']['peer_riskstrat']['work_seconds']:.2f} s)"
            for s in sizes
        )
        + " |"
    )
    lines.append(
        "| riskstrat / DuckDB-SQL peer (same columns) | "
        + " | ".join(
            f"{s['sql_peer_ratio']:.2f}x ({s['stages']['peer_riskstrat']['work_seconds']:.2f} s / "
            f"{s['stages']['peer_sql']['work_seconds']:.2f} s; "
            f"{'equal' if s['sql_peer_agreement']['equal'] else 'NOT EQUAL'})"
            for s in sizes
        )
        + " |"
    )
    lines.append(
        "| riskstrat's whole feature build / DuckDB-SQL peer | "
        + " | ".join(f"{s['sql_peer_ratio_full_build']:.2f}x" for s in sizes)
        + " |"
    )
    lines.append(
        "| pandas peer / riskstrat's whole feature build | "
        + " | ".join(f"{s['pandas_speedup_full_build']:.1f}x" for s in sizes)
        + " |"
    )
    lines.append(
        "| peer output equal to riskstrat's | "
        + " | ".join(
            f"{'yes' if s['peer_agreement']['equal'] else 'NO'} ({s['peer_agreement']['columns']} columns, "
            f"{s['peer_agreement']['people']:,} people)"
            for s in sizes
        )
        + " |"
    )
    lines.append(
        "| event rows scanned by the floor | "
        + " | ".join(f"{s['stages']['floor']['details']['event_rows']:,}" for s in sizes)
        + " |"
    )
    lines.append(
        "| training rows (stacked index dates) | "
        + " | ".join(f"{s['stages']['train']['details']['rows']:,}" for s in sizes)
        + " |"
    )
    lines.append(
        "| people scored / listed and explained | "
        + " | ".join(
            f"{s['stages']['weekly_refresh']['details']['people_scored']:,} / "
            f"{s['stages']['weekly_refresh']['details']['people_listed']:,}"
            for s in sizes
        )
        + " |"
    )
    lines.append(
        "| weekly refresh parts (s) | "
        + " | ".join(
            ", ".join(f"{k} {v}" for k, v in s["stages"]["weekly_refresh"]["details"]["parts_seconds"].items())
            for s in sizes
        )
        + " |"
    )
    lines.append(
        "| training parts (s) | "
        + " | ".join(
            ", ".join(f"{k} {v}" for k, v in s["stages"]["train"]["details"]["parts_seconds"].items()) for s in sizes
        )
        + " |"
    )
    comparison = result.get("history_comparison")
    if comparison:
        lines += [
            "",
            f"Incremental ingest of the same weekly batch ({comparison['batch_rows']:,} rows: the "
            f"{comparison['large_history_people']:,}-person population's weekly batch restricted to "
            f"{comparison['small_history_people']:,} of its people) into a database holding those "
            f"{comparison['small_history_people']:,} people's history: "
            f"{comparison['into_small']['work_seconds']:.2f} s; into one holding all "
            f"{comparison['large_history_people']:,} people's history: {comparison['into_large']['work_seconds']:.2f} s"
            f" (ratio {comparison['history_ratio']:.2f}; median of {result['repeats']}, work time).",
        ]
    if result["scaling_exponents"]:
        lines += [
            "",
            "Scaling exponent (log time / log people, smallest to largest size; 1 = linear): "
            + ", ".join(f"{k} {v:.2f}" for k, v in result["scaling_exponents"].items() if v is not None)
            + ".",
        ]
    lines += [
        "",
        f"Targets, at {sizes[-1]['people']:,} people:",
        "",
        "| target | value | limit | met |",
        "|---|---|---|---|",
    ]
    for t in result["targets"]:
        lines.append(
            f"| {t['target']} | {t['value']:.2f} {t['unit']} | {t['op']} {t['limit']:g} {t['unit']} | "
            f"{'yes' if t['met'] else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s"


def write_results(result: dict[str, Any], update_readme: bool) -> tuple[Path, Path]:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = f"{result['date'][:10]}_{'-'.join(str(s['people']) for s in result['sizes'])}"
    json_path, md_path = RESULTS_DIR / f"{stem}.json", RESULTS_DIR / f"{stem}.md"
    json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    table = markdown(result)
    md_path.write_text(f"# Benchmark {stem}\n\n{table}", encoding="utf-8")
    if update_readme and README.exists():
        text = README.read_text(encoding="utf-8")
        head, _, rest = text.partition(TABLE_START)
        _, _, tail = rest.partition(TABLE_END)
        README.write_text(f"{head}{TABLE_START}\n{table}{TABLE_END}{tail}", encoding="utf-8")
    return json_path, md_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, nargs="+", default=[100_000], help="population sizes, ascending")
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--data-dir", type=Path, default=Path("/work/bench-data"), help="where data is generated")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the short stages (median reported)")
    parser.add_argument(
        "--history-comparison",
        type=int,
        default=100_000,
        help="people whose history the small database holds in the incremental-ingest comparison",
    )
    parser.add_argument("--list-share", type=float, default=0.05, help="each team's list as a share of its people")
    parser.add_argument("--reuse", action="store_true", help="reuse generated populations (generation not re-timed)")
    parser.add_argument("--readme", action="store_true", help="replace the latest table in benchmarks/README.md")
    args = parser.parse_args()
    sizes = sorted(args.people)
    started = datetime.now(UTC)
    result: dict[str, Any] = {
        "date": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "versions": versions(),
        "seed": args.seed,
        "repeats": args.repeats,
        "list_share": args.list_share,
        "sizes": [
            benchmark_size(n, args.seed, args.data_dir, args.repeats, args.reuse, args.list_share) for n in sizes
        ],
    }
    if sizes[-1] > args.history_comparison:
        result["history_comparison"] = history_comparison(
            sizes[-1], args.history_comparison, args.data_dir, args.repeats
        )
    result["scaling_exponents"] = (
        {
            name: scaling_exponent(result["sizes"], name)
            for name in ("generate", "ingest_history", "ingest_weekly", "features", "train", "weekly_refresh")
        }
        if len(sizes) > 1
        else {}
    )
    result["targets"] = targets(result)
    result["total_seconds"] = (datetime.now(UTC) - started).total_seconds()
    json_path, md_path = write_results(result, args.readme)
    print(markdown(result))
    print(f"results: {json_path} and {md_path}")


if __name__ == "__main__":
    main()
