"""Words and formats shared by the workbook and the pages: tier order, what a change or a leaver's reason
says, dates the UK way. (The pages' own wording lives in their templates.)"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from pipelines.publish.charts import MONTHS

PROTECTIVE_MARKING = "OFFICIAL-SENSITIVE"
"""Government Security Classifications marking of person-level health and care data: on every page and sheet
that names a person (the commissioners' aggregate carries none)."""
TIER_ORDER = ("very high", "high", "moderate", "low")
ALL_TIERS = "all tiers"
"""The commissioners' summary's row of every tier together."""
CALIBRATED_RISK = (
    "Risk is a calibrated probability: 30% means that about 3 in 10 people with similar records had the outcome."
)
HOW_TO_READ = (
    "Everyone here is registered with a practice your team covers and is among the people most likely to have "
    "the outcome named at the top in the coming year. Rank 1 is the highest risk in your team.",
    CALIBRATED_RISK,
    "Tier shows where the person sits in the whole population: very high, high, moderate or low.",
    "Reasons are the factors that moved this person's score most, in plain words. They describe what the model "
    "noticed in the records, not what caused the risk, and they can be out of date.",
    "Change compares with last week's list: new, rising, falling or steady.",
    "This list supports clinical judgement; it does not replace it. Check the record and what the team knows of "
    "the person before acting.",
)
CHANGE_WORDS = {
    "new": ("New", "New to the list this week"),
    "rising": ("Rising", "Risk has risen since last week"),
    "falling": ("Falling", "Risk has fallen since last week"),
}
LEAVER_WORDS = {
    "died": "Died",
    "moved team": "Moved to another team's list",
    "risk fell": "Risk fell below this week's cut-off",
}


def how_to_read(ranking_outcome: str, calibration_warnings: Mapping[str, str]) -> tuple[str, ...]:
    """HOW_TO_READ, true of this run's models: where a model was calibrated on too few events (its plain warning
    in `calibration_warnings`), its risks are called approximate, never "calibrated"."""
    if not calibration_warnings:
        return HOW_TO_READ
    if ranking_outcome in calibration_warnings:
        risk = (
            "Risk is an approximate probability: too few people had the outcome in the data the model was "
            "calibrated on to set the level of its risks well. The order of the list is sound; read 30% as "
            "roughly, not exactly, 3 in 10."
        )
    else:
        risk = CALIBRATED_RISK
    others = sorted(o for o in calibration_warnings if o != ranking_outcome)
    if others:
        named = " and ".join(outcome_words(o) for o in others)
        risk += f" The {named} risks on the person pages are approximate: too few events to calibrate them well."
    return tuple(risk if sentence == CALIBRATED_RISK else sentence for sentence in HOW_TO_READ)


def tier_order(tiers: Sequence[str]) -> list[str]:
    return [t for t in TIER_ORDER if t in tiers] + sorted(set(tiers) - set(TIER_ORDER))


def uk_date(day: date) -> str:
    # Not strftime: it is locale-dependent and, called for every activity row, noticeably slow.
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def outcome_words(outcome: str) -> str:
    return outcome.replace("_", " ")


def services(row: dict[str, Any]) -> list[str]:
    """A listed person's current services, in words."""
    items: list[str] = []
    if row.get("in_care_home"):
        items.append("Lives in a care home")
    if row.get("recent_discharge"):
        items.append("Discharged from hospital in the last 30 days")
    if row.get("social_care_package"):
        items.append(f"Social care: {row['social_care_package']}")
    return items


def impactability(row: dict[str, Any]) -> str | None:
    """The impactability marker in words, when the person has emergency admissions for ambulatory care sensitive
    conditions: the group where proactive primary and community care has most to gain."""
    n = row.get("acsc_admissions_12m") or 0
    if not n:
        return None
    admissions = "emergency admission" if n == 1 else "emergency admissions"
    return (
        f"Impactable: {n} {admissions} in the last 12 months for conditions that good primary and community care "
        f"can often prevent ({row.get('acsc_conditions')})"
    )
