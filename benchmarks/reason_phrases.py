"""What a team reads as reasons: the most frequent reason phrases on a published run's lists, and how many
listed people's reasons are all utilisation counts (so the reasons do not tell one person from the next).

    .venv/bin/python -m benchmarks.reason_phrases var/outputs/<as_of> [--top 20] [--markdown]

Reads each team's `<team>_list.csv` (the `reasons` column, as the team sees it) and the Reasons sheet of its
workbook (which model feature each reason came from). A phrase is counted once per person, with its numbers
replaced by N so that "3 emergency admissions" and "4 emergency admissions" are one phrase. A reason is a
utilisation count when its feature counts contacts with services (the catalogue groups hospital, primary care,
community and activity: admissions, attendances, appointments, contacts, days since the last one).
A figure, not a test: it reads whatever the run wrote.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

import polars as pl
from openpyxl import load_workbook

from features.catalogue import CATALOGUE

UTILISATION_GROUPS = ("hospital", "primary_care", "community", "activity")
_NUMBER = re.compile(r"[£$€]?[+−-]?\d[\d,]*(\.\d+)?")


def template(phrase: str) -> str:
    return _NUMBER.sub("N", phrase.strip())


def is_utilisation(feature: str, with_costs: bool = False) -> bool:
    known = CATALOGUE.get(feature)
    groups = (*UTILISATION_GROUPS, "costs") if with_costs else UTILISATION_GROUPS
    return known is not None and known.group in groups


def _sheet_features(workbook: Path) -> dict[tuple[str, str], str]:
    """(person, phrase) -> model feature, from the workbook's Reasons sheet."""
    sheet = load_workbook(workbook, read_only=True)["Reasons"]
    rows = sheet.iter_rows(values_only=True)
    header = list(next(rows))
    person, phrase, feature = (header.index(h) for h in ("Person ID", "Reason in plain words", "Model feature"))
    return {(str(r[person]), str(r[phrase])): str(r[feature]) for r in rows}


def measure(run: Path) -> tuple[Counter[str], int, int, int]:
    """(phrase counts over people, people listed, people whose listed reasons are all utilisation counts, the
    same counting the costs of that utilisation too)."""
    counts: Counter[str] = Counter()
    people = all_utilisation = all_utilisation_or_cost = 0
    for listed in sorted(run.glob("teams/*/*_list.csv")):
        features = _sheet_features(listed.with_suffix(".xlsx"))
        for person, reasons in pl.read_csv(listed, infer_schema=False).select("person_id", "reasons").iter_rows():
            shown = [r for r in (reasons or "").split("; ") if r]
            people += 1
            counts.update({template(r) for r in shown})
            # The list's phrase may carry its direction ("...: raises risk"); the sheet's does not.
            sources = [features.get((person, r.rsplit(": ", 1)[0]), features.get((person, r), "")) for r in shown]
            all_utilisation += bool(sources) and all(is_utilisation(f) for f in sources)
            all_utilisation_or_cost += bool(sources) and all(is_utilisation(f, with_costs=True) for f in sources)
    return counts, people, all_utilisation, all_utilisation_or_cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a published run folder, e.g. var/outputs/2026-11-01")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    counts, people, counts_only, with_costs = measure(args.run)
    print(
        f"{people} people listed; listed reasons all utilisation counts: {counts_only} ({counts_only / people:.0%}); "
        f"all utilisation counts or their costs: {with_costs} ({with_costs / people:.0%})"
    )
    print("| # | reason phrase (numbers as N) | people | share |")
    print("|---|---|---|---|")
    for i, (phrase, n) in enumerate(counts.most_common(args.top), start=1):
        print(f"| {i} | {phrase} | {n} | {n / people:.0%} |")


if __name__ == "__main__":
    main()
