"""Synthetic linked population: contract batches (history + weekly) and the true outcome probabilities.

    result = generate_population(out_dir, SynthSettings(people=20_000), OutcomeSettings(), seed=7)

Steps: people and their conditions (`population`), a monthly engine run over burn-in, history and one
held-back year or more (`engine`, `realised`), rows for every contract table (`hospital`, `primary`,
`social_care`, `registers`), the Monte Carlo truth (`truth`: built under the run's outcome definitions, which
the file records) and the batch files (`writer`, with `dirty` for planted bad
rows; `drift` for planted changes from a date; `case_management` for a synthetic MDT service and its true
effect). Deterministic: the same seed and settings give byte-identical files.

`simulate` makes the frames in memory (no truth, no files) and `published_tables` gives them as the warehouse
would hold them after ingesting every batch: for benchmarks that need many populations quickly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from data_contracts.outcomes import OutcomeSettings
from data_contracts.settings import SynthSettings
from data_contracts.synthetic import drift
from data_contracts.synthetic.case_management import DRAWS_FILE, RECORD_FILE, CaseManagementService
from data_contracts.synthetic.hospital import build_hospital
from data_contracts.synthetic.population import Population, build_population, teams_frame
from data_contracts.synthetic.primary import (
    build_community,
    build_gp_events,
    build_outpatients,
    build_prescriptions,
    regular_medicines,
)
from data_contracts.synthetic.realised import RealisedPath, make_statics, run_realised_path
from data_contracts.synthetic.registers import caseload_frame, conditions_frame, opt_outs_frame, persons_frame
from data_contracts.synthetic.social_care import build_social_care
from data_contracts.synthetic.timeline import Timeline, rng_streams
from data_contracts.synthetic.truth import build_truth, write_truth
from data_contracts.synthetic.writer import assign_batches, contract_frame, write_batches
from data_contracts.tables import TABLES

__all__ = ["SynthResult", "generate_population"]

ProgressCallback = Callable[[str, float], None]


@dataclass
class SynthResult:
    batch_dirs: list[Path]  # in load order
    truth_path: Path
    row_counts: dict[str, int]  # per table, summed over batches (planted bad rows included)
    eval_index_date: date
    score_index_date: date


def _stages(progress: ProgressCallback | None) -> Callable[[str], Callable[[float], None]]:
    def stage(name: str) -> Callable[[float], None]:
        def report(fraction: float) -> None:
            if progress is not None:
                progress(name, min(max(fraction, 0.0), 1.0))

        report(0.0)
        return report

    return stage


@dataclass
class Simulation:
    """Everything generated, in memory: the frames (with the writer's internal columns), and how they came."""

    frames: dict[str, pl.DataFrame]
    population: Population
    statics: object
    path: RealisedPath
    timeline: Timeline
    rngs: dict
    service: CaseManagementService | None


def simulate(
    settings: SynthSettings, outcomes: OutcomeSettings, seed: int, progress: ProgressCallback | None = None
) -> Simulation:
    """People, their realised path and every table's rows (no truth, nothing written). The outcome horizon sets
    the evaluation index date and, beyond 12 months, how far the held-back future runs."""

    stage = _stages(progress)

    timeline = Timeline(settings.end_date, settings.history_years, settings.weekly_batches, outcomes.horizon_months)
    rngs = rng_streams(seed)
    stage("people")(0.0)
    population = build_population(settings, timeline, seed, rngs)
    medicines = regular_medicines(population, rngs["prescriptions"])
    statics = make_statics(population, medicines.monthly_cost_by_person)
    cm = settings.case_management
    service = CaseManagementService(cm, population, timeline, rngs["case_management"]) if cm.enabled else None
    path = run_realised_path(population, statics, timeline, rngs, stage("simulating months"), service)

    report = stage("building rows")
    spells, ae, links = build_hospital(population, path, rngs)
    report(0.3)
    frames: dict[str, pl.DataFrame] = {
        "persons": persons_frame(population, path.death_day),
        "opt_outs": opt_outs_frame(population),
        "teams": teams_frame(population),
        "conditions": conditions_frame(population),
        "apc_spells": spells,
        "ae_attendances": ae,
        "op_appointments": build_outpatients(population, path, rngs["op_detail"]),
        "gp_events": build_gp_events(population, path, rngs["gp_detail"]),
        "community_contacts": build_community(population, path, rngs["community_detail"]),
    }
    report(0.6)
    frames["prescriptions"] = build_prescriptions(population, path, medicines, rngs["rx_detail"])
    frames["asc_events"] = build_social_care(population, path, links, rngs)
    frames["caseload"] = service.caseload_frame() if service is not None else caseload_frame()
    report(1.0)
    return Simulation(frames, population, statics, path, timeline, rngs, service)


def published_tables(sim: Simulation) -> dict[str, pl.DataFrame]:
    """The contract tables as a warehouse holds them after ingesting every batch in order: person ids, the
    latest copy of each row (an end published later replaces the open row), opted-out people left out."""
    person_ids = pl.Series("person_id", sim.population.person_ids, dtype=pl.String)
    opted_out = pl.Series(sim.population.opted_out)
    out = {}
    for name, frame in sim.frames.items():
        if "_day" not in frame.columns:  # a register without dates (teams): all of it in the history batch
            out[name] = frame.select(c.name for c in TABLES[name].input_columns)
            continue
        rows = contract_frame(assign_batches(frame, name, sim.timeline), name, person_ids)
        if "_person" in rows.columns:
            rows = rows.filter(~opted_out.gather(rows["_person"]))
        rows = rows.unique(subset=list(TABLES[name].grain), keep="last", maintain_order=True)
        out[name] = rows.drop("_person", "_batch", strict=False)
    return out


def generate_population(
    out_dir: Path,
    settings: SynthSettings,
    outcomes: OutcomeSettings,
    seed: int,
    progress: ProgressCallback | None = None,
) -> SynthResult:
    """Generate the population, write out_dir/batches/<batch_id>/ and out_dir/truth.parquet (the true
    probabilities of the outcomes as `outcomes` defines them, evaluated `outcomes.horizon_months` before the end
    date and at it)."""
    out_dir = Path(out_dir)

    stage = _stages(progress)

    sim = simulate(settings, outcomes, seed, progress)
    frames, population, statics, path, timeline, rngs = (
        sim.frames,
        sim.population,
        sim.statics,
        sim.path,
        sim.timeline,
        sim.rngs,
    )
    truth = build_truth(
        frames,
        population,
        statics,
        path,
        timeline,
        outcomes,
        settings.truth_replicates,
        rngs["truth"],
        stage("true probabilities"),
    )
    drifting = settings.drift.scenario != "none"
    if drifting:
        frames = drift.apply_to_frames(frames, settings.drift, timeline, rngs["drift"])
    out_dir.mkdir(parents=True, exist_ok=True)
    truth_path = out_dir / "truth.parquet"
    write_truth(truth, truth_path, outcomes)

    file_drift = drift.FileDrift(settings.drift, timeline) if drifting else None
    batch_dirs, row_counts = write_batches(
        out_dir,
        frames,
        population,
        timeline,
        seed,
        settings.file_format,
        settings.dirty_rate,
        rngs["dirty"],
        stage("writing batches"),
        edit=file_drift.apply if file_drift else None,
    )
    if sim.service is not None:
        (out_dir / RECORD_FILE).write_text(json.dumps(sim.service.record(), default=str, indent=2) + "\n")
        sim.service.draws_frame().write_parquet(out_dir / DRAWS_FILE)
    if file_drift is not None:
        record = {"scenario": settings.drift.scenario, "start_date": drift.start_date(settings.drift, timeline)}
        record_text = json.dumps({**record, **file_drift.changed}, default=str, indent=2) + "\n"
        (out_dir / drift.DRIFT_RECORD).write_text(record_text)
    return SynthResult(
        batch_dirs=batch_dirs,
        truth_path=truth_path,
        row_counts=row_counts,
        eval_index_date=timeline.eval_index_date,
        score_index_date=timeline.score_index_date,
    )
