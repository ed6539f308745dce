"""The scoring flow on a Dask cluster (runs.task_runner = "dask"): scoring and explanation mapped per person
partition on a dask.distributed LocalCluster on loopback give the same scores, lists and published files as the
one-process run. Timings are in benchmarks/dask_scoring.py, never here."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from pipelines.partitions import partition_of

SMALL = {
    "synth": {"people": 3000, "weekly_batches": 1, "people_per_practice": 500, "truth_replicates": 4},
    "training": {
        "outcomes": ["emergency_admission"],
        "bootstrap_samples": 20,
        "explain_sample_rows": 100,
        "num_boost_round": 60,
        "predictor_choice_effect": False,
        "lgbm": {"num_threads": 1},
    },
}


def test_a_persons_partition_is_a_stable_hash_of_the_pseudonymised_id() -> None:
    ids = pl.Series(["P0000001", "P0000002", "abc", ""])
    assert partition_of(ids, 8).to_list() == partition_of(ids, 8).to_list()
    # CRC-32 (zlib, the same on every machine and version): fixed values, so a change of hash is seen.
    assert partition_of(ids, 1_000_003).to_list() == [
        __import__("zlib").crc32(i.encode()) % 1_000_003 for i in ids.to_list()
    ]
    assert set(partition_of(pl.Series([f"P{i:07d}" for i in range(2000)]), 4).to_list()) == {0, 1, 2, 3}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from data_contracts.synthetic import generate_population
    from pipelines.ingest import ingest_batch
    from pipelines.settings import load_settings
    from pipelines.training import train_all

    home = tmp_path_factory.mktemp("trained")
    settings = load_settings(None, {**SMALL, "home": str(home)})
    generated = generate_population(settings.home / "synthetic", settings.synth, settings.outcomes, settings.seed)
    for batch in sorted(generated.batch_dirs):
        ingest_batch(settings.db, batch, settings.ingest)
    train_all(settings, generated.truth_path)
    return home


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    from dask.distributed import LocalCluster

    # Threads: the workers share this process's Prefect settings (the test harness's API) and imports.
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    ) as local:
        yield local


def _copy(home: Path, to: Path) -> Path:
    shutil.copytree(home, to, ignore=shutil.ignore_patterns("synthetic"))
    return to


def _published(home: Path) -> dict[str, str]:
    """Every published file's digest, with times and the home's path masked (as the golden test does), and the
    workspace's snapshot of the run (its folder is named with a random suffix: the pointer to it is left out)."""
    from tests.golden.run import _file_digest

    files = {str(p.relative_to(home)): _file_digest(p) for p in sorted((home / "outputs").rglob("*")) if p.is_file()}
    [snapshot] = (home / "workspace" / "runs").iterdir()
    files |= {
        f"snapshot/{p.relative_to(snapshot)}": _file_digest(p) for p in sorted(snapshot.rglob("*")) if p.is_file()
    }
    return files


def _stored(home: Path, table: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(home / "riskstrat.duckdb"), read_only=True) as con:
        return con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()


def test_the_scoring_flow_on_a_local_dask_cluster_equals_the_one_process_run(
    prefect_harness: None, trained: Path, cluster: Any, tmp_path: Path
) -> None:
    from pipelines.flows import flow_for
    from pipelines.settings import load_settings

    one_home = _copy(trained, tmp_path / "one")
    dask_home = _copy(trained, tmp_path / "dask")
    one_overrides = {**SMALL, "home": str(one_home)}
    dask_overrides = {
        **SMALL,
        "home": str(dask_home),
        "runs": {"task_runner": "dask", "dask_address": cluster.scheduler_address, "score_partitions": 4},
    }
    one = flow_for("score", load_settings(None, one_overrides))(overrides=one_overrides)
    dask_settings = load_settings(None, dask_overrides)
    on_dask = flow_for("score", dask_settings)
    assert type(on_dask.task_runner).__name__ == "DaskTaskRunner"
    spread = on_dask(overrides=dask_overrides)

    assert spread["run_id"] == one["run_id"] and spread["counts"] == one["counts"]
    assert spread["counts"]["people_listed"] > 0
    for table in ("risk_scores", "team_list_history"):
        assert _stored(dask_home, table) == _stored(one_home, table), table
    published = _published(dask_home)
    assert published == _published(one_home)
    assert any(name.endswith("_list.csv") for name in published)
    assert not (dask_home / "partitions").exists() or not any((dask_home / "partitions").iterdir())
