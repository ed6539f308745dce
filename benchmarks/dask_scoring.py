"""The scoring flow on one process against the same flow on a local Dask cluster (runs.task_runner = "dask"),
and the per-partition costs the national design (benchmarks/README.md) is sized from.

Prepares a synthetic population (`--people`, default 20,000; one outcome model, fast training settings: the
figure is scoring, not training), then, on one Prefect test server started once:

- one process: the `score` flow with the default task runner;
- Dask: the same flow on a dask.distributed LocalCluster on loopback (`--workers` worker processes, one thread
  each), scoring and explanation mapped over `--partitions` person partitions;

each in a fresh copy of the warehouse, and checks the two published the same scores. Then it times the mapped
steps one partition at a time in this process (features written, scored, explained), for the per-partition costs.

    nice -n 10 .venv/bin/python -m benchmarks.dask_scoring [--people 20000] [--partitions 8] [--workers 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

TRAINING = {
    "outcomes": ["emergency_admission"],
    "bootstrap_samples": 20,
    "explain_sample_rows": 100,
    "num_boost_round": 100,
    "predictor_choice_effect": False,
}


def _prepare(home: Path, people: int) -> dict[str, Any]:
    from data_contracts.synthetic import generate_population
    from pipelines.ingest import ingest_batch
    from pipelines.settings import load_settings
    from pipelines.training import train_all

    overrides = {"home": str(home), "synth": {"people": people, "weekly_batches": 1}, "training": TRAINING}
    settings = load_settings(None, overrides)
    generated = generate_population(settings.home / "synthetic", settings.synth, settings.outcomes, settings.seed)
    for batch in sorted(generated.batch_dirs):
        ingest_batch(settings.db, batch, settings.ingest)
    train_all(settings, generated.truth_path)
    return overrides


def _copy(home: Path, to: Path) -> Path:
    shutil.copytree(home, to, ignore=shutil.ignore_patterns("synthetic"))
    return to


def _per_partition(overrides: dict[str, Any], partitions: int) -> dict[str, Any]:
    """Each mapped step timed on each partition, sequentially in this process."""
    from pipelines import partitions as parts
    from pipelines.jobs import _partition_folder
    from pipelines.scoring import list_people, stage_scoring
    from pipelines.settings import load_settings

    settings = load_settings(None, {**overrides, "runs": {"score_partitions": partitions}})
    started = time.perf_counter()
    staged = stage_scoring(settings)
    stage_seconds = time.perf_counter() - started
    folder = _partition_folder(settings, staged.run_id)
    started = time.perf_counter()
    paths = parts.write_partitions(staged.features, partitions, folder)
    write_seconds = time.perf_counter() - started
    registry = str(settings.registry.resolve())
    ranking = settings.scoring.ranking_outcome
    score_seconds, score_paths = [], []
    for path in paths:
        started = time.perf_counter()
        score_paths.append(parts.score_partition(path, registry, staged.versions, ranking))
        score_seconds.append(time.perf_counter() - started)
    started = time.perf_counter()
    listed = list_people(staged, parts.gather_scores(score_paths))
    reduce_seconds = time.perf_counter() - started
    listed_path, _ = parts.write_listed(listed.marked, folder, partitions)
    explain_seconds = []
    for path in paths:
        started = time.perf_counter()
        parts.explain_partition(
            path,
            listed_path,
            registry,
            ranking,
            staged.versions[ranking],
            settings.scoring.top_reasons,
            staged.currency,
        )
        explain_seconds.append(time.perf_counter() - started)
    sizes = [Path(p).stat().st_size for p in paths]
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "people": staged.features.height,
        "listed": listed.marked["person_id"].n_unique(),
        "stage (read warehouse, build features)": stage_seconds,
        "write partitions": write_seconds,
        "score per partition (median)": statistics.median(score_seconds),
        "explain per partition (median)": statistics.median(explain_seconds),
        "reduce (tiers, lists, changes)": reduce_seconds,
        "feature partition size MB (median)": statistics.median(sizes) / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from dask.distributed import LocalCluster
    from prefect.testing.utilities import prefect_test_harness

    from pipelines.flows import flow_for
    from pipelines.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        overrides = _prepare(root / "trained", args.people)
        print(f"prepared {args.people:,} people (ingested, one model trained) in {time.perf_counter() - started:.0f} s")
        timings: dict[str, float] = {}
        summaries: dict[str, Any] = {}
        with prefect_test_harness(server_startup_timeout=180):
            one = {**overrides, "home": str(_copy(root / "trained", root / "one"))}
            started = time.perf_counter()
            summaries["one process"] = flow_for("score", load_settings(None, one))(overrides=one)
            timings["one process"] = time.perf_counter() - started
            with LocalCluster(
                n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
            ) as cluster:
                runs = {"task_runner": "dask", "dask_address": cluster.scheduler_address}
                spread = {
                    **overrides,
                    "home": str(_copy(root / "trained", root / "dask")),
                    "runs": {**runs, "score_partitions": args.partitions},
                }
                started = time.perf_counter()
                name = f"Dask LocalCluster, {args.workers} worker processes, {args.partitions} partitions"
                summaries[name] = flow_for("score", load_settings(None, spread))(overrides=spread)
                timings[name] = time.perf_counter() - started
        first, *others = summaries.values()
        equal = all(s["run_id"] == first["run_id"] and s["counts"] == first["counts"] for s in others)
        print(f"score flow, {args.people:,} people (wall time of the flow, Prefect server already running)")
        for name, seconds in timings.items():
            print(f"  {name:<60} {seconds:7.1f} s")
        print(f"  same run id and counts: {equal}")
        costs = _per_partition(overrides, args.partitions)
        print(f"per partition ({args.partitions} partitions, one at a time in one process)")
        for name, value in costs.items():
            print(f"  {name:<45} {value:10.2f}" if isinstance(value, float) else f"  {name:<45} {value:>10,}")


if __name__ == "__main__":
    main()
