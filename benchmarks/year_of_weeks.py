"""A year of weekly runs per drift scenario: does monitoring detect each planted change, how many weeks after it
starts, and does it stay quiet on the stable population? Do the data-quality gates stop (or flag) a missing
feed and a fully quarantined batch?

Per scenario (data_contracts.synthetic.drift): generate a population with `--weeks` weekly batches and the
scenario starting halfway, ingest the history batch and train on it (the ranking outcome only), then for
every week: ingest the batch, run the gates (policy "flag", so the year goes on; the same decision is also
put to policy "fail", which must raise), score, store and monitor, exactly as the weekly flow does.

Detection = the first week, on or after the change, with a monitoring alert or a gate error; a false alarm =
any alert or gate error before the change (every week for the stable population).

Usage: python -m benchmarks.year_of_weeks [--people 20000] [--weeks 52] [--scenarios none,coding_change,...]
Writes benchmarks/results/year_of_weeks.json and prints a Markdown table. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from data_contracts.quality import DataQualityError
from data_contracts.settings import QualitySettings
from data_contracts.synthetic import generate_population
from data_contracts.synthetic.drift import SCENARIOS, start_date
from data_contracts.synthetic.timeline import Timeline
from pipelines.gates import apply_policy, gate
from pipelines.ingest import ingest_batch
from pipelines.monitor import monitor_scored, write_report
from pipelines.scoring import score_population
from pipelines.settings import load_settings
from pipelines.training import train_all
from pipelines.warehouse import store_scores

RESULTS = Path(__file__).with_name("results") / "year_of_weeks.json"


def overrides(home: Path, people: int, weeks: int, scenario: str, seed: int, history_years: int) -> dict[str, Any]:
    return {
        "home": str(home),
        "seed": seed,
        "synth": {
            "people": people,
            "history_years": history_years,
            "weekly_batches": weeks,
            "people_per_practice": 2000,
            "truth_replicates": 4,
            "drift": {"scenario": scenario},
        },
        "training": {
            "outcomes": ["emergency_admission"],
            "bootstrap_samples": 20,
            "explain_sample_rows": 500,
        },
        "quality": {"on_error": "flag"},
    }


def run_scenario(
    root: Path, people: int, weeks: int, scenario: str, seed: int, keep: bool, history_years: int = 7
) -> dict[str, Any]:
    home = root / scenario
    if home.exists():
        shutil.rmtree(home)
    settings = load_settings(None, overrides(home, people, weeks, scenario, seed, history_years))
    timings: dict[str, float] = {}
    started = time.perf_counter()
    generated = generate_population(settings.home / "synthetic", settings.synth, settings.outcomes, settings.seed)
    timings["generate"] = time.perf_counter() - started
    change = start_date(
        settings.synth.drift,
        Timeline(settings.synth.end_date, settings.synth.history_years, weeks, settings.outcomes.horizon_months),
    )
    step = time.perf_counter()
    ingest_batch(settings.db, generated.batch_dirs[0], settings.ingest)
    train_all(settings, generated.truth_path)
    timings["history_and_training"] = time.perf_counter() - step
    failing = QualitySettings(**{**vars(settings.quality), "on_error": "fail"})
    weeks_out = []
    step = time.perf_counter()
    for batch_dir in generated.batch_dirs[1:]:
        report = ingest_batch(settings.db, batch_dir, settings.ingest)
        decision = gate(settings.db, [report.batch_id], settings.quality)
        stopped = False
        try:
            apply_policy(decision, failing)
        except DataQualityError:
            stopped = True
        warning = apply_policy(decision, settings.quality)
        result = score_population(settings, data_warning=warning)
        store_scores(settings.db, result)
        monitored = monitor_scored(settings, result, result.features)
        stated = warning is None or "WARNING" in result.publication.provenance.data_batches_text
        weeks_out.append(
            {
                "week": len(weeks_out) + 1,
                "as_of": str(result.publication.provenance.as_of),
                "changed": result.publication.provenance.as_of >= change,
                "gate": decision.status,
                "gate_errors": [f"{r.table} {r.check}" for r in decision.errors],
                "stopped_under_fail": stopped,
                "warning_in_provenance": stated,
                "alerts": [f"{a.rule} {a.subject}" for a in monitored.alerts],
                "top_drift": monitored.feature_drift.head(3).to_dicts(),
                "score_psi": monitored.score_psi,
                "list_churn": monitored.list_churn,
                "expected_auroc": monitored.expected["expected_auroc"],
                "realised": {f"{lag}m": v for lag, v in monitored.realised.items()},
            }
        )
        w = weeks_out[-1]
        print(
            f"{scenario} week {w['week']:2d} {w['as_of']} gate {w['gate']:5s} alerts {w['alerts']} "
            f"top {[(d['feature'], round(d['psi'], 3)) for d in w['top_drift'][:1]]} "
            f"oe {[(k, round(v['observed_expected'], 2), round(v['oe_z'], 1)) for k, v in w['realised'].items()]}",
            flush=True,
        )
    timings["weeks"] = time.perf_counter() - step
    write_report(settings, settings.outputs / "monitoring" / "index.html")
    flagged = [w for w in weeks_out if w["alerts"] or w["gate"] == "error"]
    before = [w for w in flagged if not w["changed"]] if scenario != "none" else flagged
    after = [w for w in flagged if w["changed"]] if scenario != "none" else []
    first_changed = next((w["week"] for w in weeks_out if w["changed"]), None)
    summary = {
        "scenario": scenario,
        "people": people,
        "history_years": history_years,
        "weeks": weeks,
        "change_from": None if scenario == "none" else str(change),
        "first_changed_week": None if scenario == "none" else first_changed,
        "detected_week": after[0]["week"] if after else None,
        "weeks_to_detection": (after[0]["week"] - first_changed) if after and first_changed else None,
        "detected_by": (after[0]["alerts"] + after[0]["gate_errors"]) if after else [],
        "false_alarm_weeks": [w["week"] for w in before],
        "false_alarms": [(w["week"], w["alerts"] + w["gate_errors"]) for w in before],
        "stopped_under_fail_weeks": [w["week"] for w in weeks_out if w["stopped_under_fail"]],
        "warning_stated_in_provenance": all(w["warning_in_provenance"] for w in weeks_out),
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "weekly": weeks_out,
    }
    if not keep:
        shutil.rmtree(home / "synthetic", ignore_errors=True)
    return summary


def markdown(summaries: list[dict[str, Any]]) -> str:
    lines = [
        "| scenario | change from (week) | detected (week) | weeks to detection | detected by | false alarms | "
        "stopped under `fail` | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s['scenario']} | {s['change_from'] or '-'} ({s['first_changed_week'] or '-'}) | "
            f"{s['detected_week'] or '-'} | {s['weeks_to_detection'] if s['weeks_to_detection'] is not None else '-'} "
            f"| {', '.join(s['detected_by'][:2]) or '-'} | {len(s['false_alarm_weeks'])} | "
            f"{', '.join(map(str, s['stopped_under_fail_weeks'])) or '-'} | {sum(s['seconds'].values()):.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--seed", type=int, default=20261124)
    # Features without a window (days since the last A&E attendance) drift as the history behind a date grows;
    # with 5 years, a year of weekly runs moves that feature past the alert threshold (see the README).
    parser.add_argument("--history-years", type=int, default=7)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--root", type=Path, default=Path("var/year_of_weeks"))
    parser.add_argument("--keep", action="store_true", help="keep the generated batches")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    summaries = [
        run_scenario(args.root, args.people, args.weeks, scenario, args.seed, args.keep, args.history_years)
        for scenario in args.scenarios.split(",")
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summaries, indent=1, default=str) + "\n")
    print(markdown(summaries))


if __name__ == "__main__":
    main()
