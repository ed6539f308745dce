"""Reasons a clinician can check: each listed person's contributions grouped into distinct facts from the
record, in plain words, on a scale that adds up to their risk.

The policy, in full:

- **Related features are one reason.** Every feature belongs to one reason group (`Feature.reason` in
  `features.catalogue`): the same admissions counted over 3, 6, 12 and 24 months, and the days since the last
  one, are one reason. A group's contribution is the sum of its features' contributions (TreeSHAP values add).
- **A reason states what is in the record.** A group is phrased from its members that say something present
  (a count above 0, a flag that is true, a date on record, a service that is running), those that moved the score
  most first, one window per count and at most `FACTS_PER_REASON` facts. Engineered values are phrased from the
  counts they are made of, so every phrase can be checked against the record.
- **Reasons for being on the list raise the risk.** The list's reasons are the `top_n` groups that raise the risk
  most and have something present to state. A group that raises the risk only through absence (no admission on
  record, say) is never given as a reason for being on the list: its share is in "all other factors".
- **What lowers the risk is shown apart.** Up to `LOWERING_REASONS` groups that lower the risk most are phrased
  by their one fact that lowered it most (absence included: "no emergency admission on record") and shown under
  "what lowers the risk",
  never among the reasons for being on the list.
- **Shares add up to the headline risk.** Each shown group's share is in percentage points of risk. The path
  runs from the calibrated risk of the model's average score (`start_risk`) to the person's calibrated risk (the
  headline), adding the groups in the order shown (reasons, then what lowers the risk, then all other factors
  together). Along it each step is the change in the logistic of the log-odds, scaled so the steps add up
  exactly to headline minus start: the calibrator itself cannot shape the steps, because an isotonic calibrator
  is flat between its thresholds and would give a real effect 0 points and the next one the whole jump.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from data_contracts.reference import REFERENCE_CURRENCY
from features.catalogue import CATALOGUE, ago_words, explain_phrase, is_present, reason_label

if TYPE_CHECKING:
    from models.training import TrainedModel

FACTS_PER_REASON = 2
ONE_FACT_REASONS = ("costs",)
"""Reasons stated with their largest fact only: two amounts of money side by side read as one sum."""
LOWERING_REASONS = 3
RAISES = "raises risk"
LOWERS = "lowers risk"
_WINDOW = re.compile(r"_\d+m$")


@dataclass(frozen=True)
class Reasons:
    """`reasons`: one row per shown reason (person_id, reason_rank, reason, feature, feature_label, value,
    contribution, points, phrase, direction); raising reasons rank 1.., then what lowers the risk.
    `people`: one row per person (person_id, base_logodds, logodds, start_risk: the calibrated risk of the model's
    average score, where the shares start)."""

    reasons: pl.DataFrame
    people: pl.DataFrame


def reason_of(feature: str) -> str:
    known = CATALOGUE.get(feature)
    return known.reason if known is not None else feature


def build_reasons(
    model: TrainedModel, features: pl.DataFrame, top_n: int, currency: str = REFERENCE_CURRENCY
) -> Reasons:
    """The reasons of every row of `features` (one row per person) under the policy above."""
    from models.split import PERSON_COL

    if model.calibrator_ is None:
        raise RuntimeError(f"the {model.outcome} model is not calibrated")
    names = list(model.feature_cols)
    contributions = model.contributions(features)
    per_feature = contributions[:, :-1]
    base = contributions[:, -1]
    logodds = contributions.sum(axis=1)
    groups = list(dict.fromkeys(reason_of(n) for n in names))
    membership = np.zeros((len(names), len(groups)))
    for j, name in enumerate(names):
        membership[j, groups.index(reason_of(name))] = 1.0
    per_group = per_feature @ membership
    records = features.to_dicts()  # the whole row: engineered values are phrased from their counts
    ids = [str(i) for i in features.get_column(PERSON_COL).to_list()]
    present = np.array([[is_present(n, r[n]) for n in names] for r in records], dtype=bool).reshape(len(records), -1)
    members = {g: [j for j, n in enumerate(names) if reason_of(n) == g] for g in groups}

    rows: list[dict[str, Any]] = []
    paths: list[list[float]] = []
    for i, record in enumerate(records):
        by_size = np.argsort(-per_group[i], kind="stable")
        raising = [g for g in by_size if per_group[i, g] > 0 and any(present[i, j] for j in members[groups[g]])][:top_n]
        lowering = [g for g in by_size[::-1] if per_group[i, g] < 0][:LOWERING_REASONS]
        shown = [(g, RAISES) for g in raising] + [(g, LOWERS) for g in lowering]
        path = [float(base[i])]
        for rank, (g, direction) in enumerate(shown, start=1):
            group = groups[g]
            facts = _facts(group, members[group], per_feature[i], present[i], direction, names)
            lead = names[facts[0]]
            path.append(path[-1] + float(per_group[i, g]))
            rows.append(
                {
                    PERSON_COL: ids[i],
                    "reason_rank": rank,
                    "reason": group,
                    "feature": lead,
                    "feature_label": reason_label(group),
                    "value": _text(record[lead]),
                    "contribution": float(per_group[i, g]),
                    "phrase": _joined(facts, names, record, currency),
                    "direction": direction,
                }
            )
        path.append(float(logodds[i]))
        paths.append(path)
    start = model.calibrator_.predict(base)
    headline = model.calibrator_.predict(logodds)
    points: list[float] = []
    people: list[dict[str, Any]] = []
    for i, path in enumerate(paths):
        points += [float(p) for p in _shares(np.array(path), float(start[i]), float(headline[i]))[:-1]]
        people.append(
            {
                PERSON_COL: ids[i],
                "base_logodds": float(base[i]),
                "logodds": float(logodds[i]),
                "start_risk": float(start[i]),
            }
        )
    schema = {
        PERSON_COL: pl.String,
        "reason_rank": pl.Int64,
        "reason": pl.String,
        "feature": pl.String,
        "feature_label": pl.String,
        "value": pl.String,
        "contribution": pl.Float64,
        "phrase": pl.String,
        "direction": pl.String,
    }
    reasons = pl.DataFrame(rows, schema=schema).with_columns(points=pl.Series(points, dtype=pl.Float64))
    return Reasons(
        reasons,
        pl.DataFrame(
            people,
            schema={
                PERSON_COL: pl.String,
                **dict.fromkeys(("base_logodds", "logodds", "start_risk"), pl.Float64),
            },
        ),
    )


def _facts(
    group: str,
    member_idx: Sequence[int],
    contributions: np.ndarray,
    present: np.ndarray,
    direction: str,
    names: Sequence[str],
) -> list[int]:
    """The members that phrase a reason: raising, the present ones that raised it most; lowering, the ones that
    lowered it most (absence is a fine thing to say there). One window per count."""
    if direction == RAISES:
        ordered = sorted((j for j in member_idx if present[j]), key=lambda j: -contributions[j])
    else:
        ordered = sorted(member_idx, key=lambda j: contributions[j])
    chosen: list[int] = []
    stems: set[str] = set()
    for j in ordered:
        stem = _WINDOW.sub("", names[j])
        if stem in stems:
            continue
        stems.add(stem)
        chosen.append(j)
        if len(chosen) == (1 if group in ONE_FACT_REASONS or direction == LOWERS else FACTS_PER_REASON):
            break
    # A count, then when the last one was: "3 emergency admissions in the last 12 months, the last one 2 months ago".
    return sorted(chosen, key=lambda j: _is_ago(names[j]))


def _is_ago(name: str) -> bool:
    known = CATALOGUE.get(name)
    return known is not None and known.ago


def _shares(path: np.ndarray, start: float, headline: float) -> np.ndarray:
    """The steps of a log-odds path as percentage points that add up to headline - start (see the policy)."""
    logistic = 1.0 / (1.0 + np.exp(-path))
    steps = np.diff(logistic)
    total = logistic[-1] - logistic[0]
    if abs(total) < 1e-12:
        # No net change on the log-odds scale: share the calibrated change by the size of each step.
        weights = np.abs(steps) / max(float(np.abs(steps).sum()), 1e-12)
        return weights * (headline - start)
    return steps * ((headline - start) / total)


def _joined(facts: Sequence[int], names: Sequence[str], record: dict[str, Any], currency: str) -> str:
    words = []
    for k, j in enumerate(facts):
        value = record[names[j]]
        if k > 0 and _is_ago(names[j]) and value is not None:
            words.append(f"the last one {ago_words(float(value))}")  # after the count it dates
        else:
            words.append(_phrase(names[j], record, currency))
    return ", ".join(words)


def _phrase(name: str, record: dict[str, Any], currency: str) -> str:
    if name not in CATALOGUE:  # a model trained on columns the catalogue does not describe
        return f"{name}: {_text(record[name])}"
    return explain_phrase(name, record[name], currency, record)


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
