"""Does the evaluation of case management recover the effect the generator planted? (Not a test.)

Per scenario, `--runs` seeded synthetic populations with the case-management service on
(data_contracts.synthetic.case_management): the synthetic MDTs take people on from their lists ranked by the
case-finding score, favouring recent emergency admissions, some decline; case management multiplies the
emergency-admission hazard by (1 - effect). Each population stays in memory (`simulate`, `published_tables`:
the tables as the warehouse would hold them) and is evaluated by models.impact with the shipped plan (the
bootstrap shortened to `--bootstrap` replicates).

Scenarios: null (effect 0), reduction_20 (effect 0.2), margin_20 (effect 0.2, randomised 10 places either side of
the last place discussed) and margin_20_wide (30 places).
Reported per scenario: the naive before-and-after mean, the matched DiD mean estimate, its bias against the
true relative change, the share of runs whose interval covers the truth, and the same for the randomised
estimate where the draw is on. Targets: null DiD covers 0 in >= 90% of runs; 20% reduction covered in >= 90%
with mean bias under 5 percentage points.

Usage: python -m benchmarks.case_management [--runs 50] [--people 6000] [--bootstrap 300]
Writes benchmarks/results/case_management.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from data_contracts.evaluation_plan import EvaluationPlan, load_plan
from data_contracts.outcomes import OutcomeSettings
from data_contracts.settings import CaseManagementSettings, SynthSettings
from data_contracts.synthetic import published_tables, simulate
from models.impact import evaluate_impact

RESULTS = Path(__file__).with_name("results") / "case_management.json"
SCENARIOS: dict[str, dict[str, Any]] = {
    "null": {"effect": 0.0, "margin": 0},
    "reduction_20": {"effect": 0.2, "margin": 0},
    "margin_20": {"effect": 0.2, "margin": 10},
    "margin_20_wide": {"effect": 0.2, "margin": 30},  # a wider draw: about 3 times the people randomised
}
FIRST_SEED = 1000


def run_one(scenario: dict[str, Any], seed: int, people: int, plan: EvaluationPlan) -> dict[str, Any]:
    settings = SynthSettings(
        people=people,
        history_years=3,
        truth_replicates=1,
        case_management=CaseManagementSettings(enabled=True, effect=scenario["effect"], margin=scenario["margin"]),
    )
    sim = simulate(settings, OutcomeSettings(), seed)
    tables = {name: frame.lazy() for name, frame in published_tables(sim).items()}
    assert sim.service is not None
    if scenario["margin"]:
        tables["list_draws"] = sim.service.draws_frame().lazy()
    result = evaluate_impact(tables, plan, settings.end_date)
    row: dict[str, Any] = {"seed": seed, "taken_on": result.evaluable, "matched": result.matched}
    for method in ("naive_before_after", "matched_did", "randomised_margin"):
        found = result.estimate(method)
        if found is not None:
            row[method] = {"estimate": found.estimate, "lo": found.lo, "hi": found.hi, "people": found.people}
    return row


def summarise(rows: list[dict[str, Any]], truth: float) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": len(rows), "mean_taken_on": float(np.mean([r["taken_on"] for r in rows]))}
    out["mean_matched"] = float(np.mean([r["matched"] for r in rows]))
    for method in ("naive_before_after", "matched_did", "randomised_margin"):
        found = [r[method] for r in rows if method in r and np.isfinite(r[method]["estimate"])]
        if not found:
            continue
        estimates = np.array([f["estimate"] for f in found])
        covered = [f["lo"] <= truth <= f["hi"] for f in found]
        out[method] = {
            "runs": len(found),
            "mean_estimate": float(estimates.mean()),
            "median_estimate": float(np.median(estimates)),
            "bias_pp": float((estimates.mean() - truth) * 100),
            "coverage": float(np.mean(covered)),
            "mean_interval_width": float(np.mean([f["hi"] - f["lo"] for f in found])),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--people", type=int, default=6000)
    parser.add_argument("--bootstrap", type=int, default=300)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--merge", action="store_true", help="Add the scenarios run to those already in --out.")
    args = parser.parse_args()
    plan, _ = load_plan()
    plan = dataclasses.replace(plan, analysis=dataclasses.replace(plan.analysis, bootstrap_replicates=args.bootstrap))
    report: dict[str, Any] = {
        "people": args.people,
        "runs": args.runs,
        "bootstrap": args.bootstrap,
        "plan": plan.id,
        "matching": dataclasses.asdict(plan.matching),
        "scenarios": {},
    }
    started = time.perf_counter()
    for name in args.scenarios.split(","):
        scenario = SCENARIOS[name]
        rows = [run_one(scenario, FIRST_SEED + i, args.people, plan) for i in range(args.runs)]
        truth = -scenario["effect"]
        report["scenarios"][name] = {**scenario, "true_relative_change": truth, **summarise(rows, truth), "rows": rows}
        print(name, json.dumps({k: v for k, v in report["scenarios"][name].items() if k != "rows"}), flush=True)
    report["seconds"] = round(time.perf_counter() - started, 1)
    if args.merge and args.out.exists():
        earlier = json.loads(args.out.read_text())
        report["scenarios"] = {**earlier["scenarios"], **report["scenarios"]}
        report["seconds"] = round(earlier["seconds"] + report["seconds"], 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"{report['runs']} populations of {report['people']:,} people per scenario, {report['bootstrap']} bootstrap "
        f"replicates ({report['seconds']} s)",
        "",
        "| scenario | true change | taken on | matched | naive mean | DiD mean | DiD bias (pp) | DiD coverage "
        "| randomised mean | randomised bias (pp) | randomised coverage |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in report["scenarios"].items():
        naive, did, rnd = s.get("naive_before_after", {}), s.get("matched_did", {}), s.get("randomised_margin", {})

        def pct(d: dict[str, Any], key: str) -> str:
            return f"{d[key] * 100:+.1f}%" if key in d else "-"

        lines.append(
            f"| {name} | {s['true_relative_change'] * 100:+.0f}% | {s['mean_taken_on']:.0f} | {s['mean_matched']:.0f} "
            f"| {pct(naive, 'mean_estimate')} | {pct(did, 'mean_estimate')} "
            f"| {did.get('bias_pp', float('nan')):+.1f} | {did.get('coverage', float('nan')):.0%} "
            f"| {pct(rnd, 'mean_estimate')} | {rnd.get('bias_pp', float('nan')):+.1f} "
            f"| {rnd.get('coverage', float('nan')):.0%} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
