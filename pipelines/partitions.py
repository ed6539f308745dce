"""Scoring and explanation mapped over person partitions, for a task runner that spreads them over machines
(`runs.task_runner = "dask"`: Prefect's Dask task runner). The default scores everyone in one process.

A person's partition is the CRC-32 of the UTF-8 bytes of their pseudonymised id, modulo `runs.score_partitions`:
the same on every machine, library version and run (Polars' and DuckDB's own hashes are not promised stable).

What is exported and mapped (workers read and write files under `runs.partition_dir`, which must be a folder every
worker sees; it is removed when the run has its result):

1. the driver builds everyone's features once and writes them as one Parquet file per partition, with each
   row's position in the one-process frame (`_row`);
2. map: each partition is scored with each outcome's current model (loaded from the registry once per worker)
   and its scores written beside it;
3. reduce, once, in the driver: the scores in `_row` order, then tiers over the whole population, each team's
   list cut at its capacity (and the draw at the margin), week-on-week changes, leavers and rising risk
   (`pipelines.scoring.list_people`);
4. map: the people listed in each partition are explained (TreeSHAP, the costly step) and their reasons written;
5. the driver puts the reasons back in `_row` order and assembles the publication, published as in one process.

Scoring and explanation are row by row, so each person's values are exactly those of the one-process run
(tests/test_partitions.py checks the scores, lists and published files equal it on a LocalCluster).
"""

from __future__ import annotations

import functools
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from pipelines.scoring import explain_people, score_people

if TYPE_CHECKING:
    from models.reasons import Reasons
    from models.training import TrainedModel

ROW = "_row"


def partition_of(person_ids: pl.Series, partitions: int) -> pl.Series:
    """Each person's partition, 0 .. partitions - 1, from the pseudonymised id alone."""
    return pl.Series("partition", [zlib.crc32(p.encode()) % partitions for p in person_ids.to_list()], dtype=pl.UInt32)


def write_partitions(features: pl.DataFrame, partitions: int, folder: Path) -> list[str]:
    """Everyone's features as one Parquet file per non-empty partition; the paths in partition order."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = features.with_row_index(ROW).with_columns(partition_of(features["person_id"], partitions))
    paths = []
    for (number,), part in sorted(frame.partition_by("partition", as_dict=True, maintain_order=True).items()):
        path = folder / f"features-{number:05d}.parquet"
        part.drop("partition").write_parquet(path)
        paths.append(str(path))
    return paths


@functools.lru_cache(maxsize=32)
def _model(registry: str, outcome: str, version: str) -> TrainedModel:
    """A model loaded once per worker process and version."""
    from models.registry import ModelRegistry

    return ModelRegistry(Path(registry)).load(outcome, version)


def score_partition(features_path: str, registry: str, versions: dict[str, str], ranking: str) -> str:
    """Score one partition with every current model; the scores' Parquet path."""
    frame = pl.read_parquet(features_path)
    models = {outcome: _model(registry, outcome, version) for outcome, version in versions.items()}
    scores = score_people(models, frame.drop(ROW), ranking).with_columns(frame[ROW])
    out = Path(features_path).with_name(Path(features_path).name.replace("features-", "scores-"))
    scores.write_parquet(out)
    return str(out)


def gather_scores(paths: list[str]) -> pl.DataFrame:
    """The partitions' scores in the one-process frame's row order."""
    return pl.concat([pl.read_parquet(p) for p in paths]).sort(ROW).drop(ROW)


def write_listed(marked: pl.DataFrame, folder: Path, partitions: int) -> tuple[str, set[int]]:
    """The ids of the people listed (any team), and the partitions that hold any of them."""
    ids = marked.select("person_id").unique(maintain_order=True)
    path = folder / "listed.parquet"
    ids.write_parquet(path)
    return str(path), set(partition_of(ids["person_id"], partitions).to_list())


def explain_partition(
    features_path: str, listed_path: str, registry: str, outcome: str, version: str, top_reasons: int, currency: str
) -> tuple[str, str]:
    """Explain the listed people of one partition with the ranking model; the reasons' and people's paths."""
    frame = pl.read_parquet(features_path).join(pl.read_parquet(listed_path), on="person_id", how="semi")
    reasons = explain_people(_model(registry, outcome, version), frame.drop(ROW), top_reasons, currency)
    rows = frame.select("person_id", ROW)
    stem = Path(features_path).name.replace("features-", "")
    reasons_path = Path(features_path).with_name(f"reasons-{stem}")
    people_path = Path(features_path).with_name(f"people-{stem}")
    reasons.reasons.join(rows, on="person_id", how="left").write_parquet(reasons_path)
    reasons.people.join(rows, on="person_id", how="left").write_parquet(people_path)
    return str(reasons_path), str(people_path)


def gather_reasons(paths: list[tuple[str, str]]) -> Reasons:
    """The partitions' reasons in the one-process order: by the person's row, then the reason's rank."""
    from models.reasons import Reasons

    reasons = pl.concat([pl.read_parquet(r) for r, _ in paths]).sort(ROW, "reason_rank").drop(ROW)
    people = pl.concat([pl.read_parquet(p) for _, p in paths]).sort(ROW).drop(ROW)
    return Reasons(reasons, people)


def partition_number(path: str) -> int:
    return int(Path(path).stem.rsplit("-", 1)[1])
