"""The evaluation plan of a case-management service: what will be measured, decided before the results are seen.

A plan is a TOML file (`evaluation.toml`; the shipped default is `reference/evaluation.toml`) validated here
like the settings: unknown keys, out-of-range values and unknown outcomes are refused with one line naming the
file and the key. Its hash (`plan_hash`) is of the validated content in canonical JSON, so comments and layout
do not change it and any change of what is measured does. Freezing (pipelines/evaluate.py) records the hash and
date in the warehouse; a frozen plan id with another hash is refused unless the file declares itself a new plan
(a new `id`, naming the plan it `replaces`).

The outcomes an evaluation may name are declared in `reference/evaluation_outcomes.toml` (with their source).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StrictFloat, StrictInt, StrictStr, TypeAdapter, ValidationError

from data_contracts.errors import DomainError
from data_contracts.reference import REFERENCE_DIR

DEFAULT_PLAN = REFERENCE_DIR / "evaluation.toml"
OUTCOMES_FILE = REFERENCE_DIR / "evaluation_outcomes.toml"
MATCH_COLUMNS = ("team_id", "sex", "age_band", "emergency_3m_band", "emergency_12m_band")


class PlanError(DomainError, ValueError):
    """The plan cannot be used as written, or it changed after it was frozen (the message is one line)."""


@dataclass(frozen=True)
class EvaluationOutcome:
    name: str
    label: str
    kind: Literal["count", "sum", "event"]  # events per person-year; an amount per person-year; first event
    description: str
    source: str
    year: str


@cache
def evaluation_outcomes() -> dict[str, EvaluationOutcome]:
    with open(OUTCOMES_FILE, "rb") as fh:
        raw = tomllib.load(fh)
    return {name: EvaluationOutcome(name=name, **{k: str(v) for k, v in spec.items()}) for name, spec in raw.items()}


Share = Annotated[StrictFloat, Field(gt=0, lt=1)]


@dataclass(frozen=True)
class MatchingPlan:
    __pydantic_config__ = ConfigDict(extra="forbid")

    # The score each person is matched on at their start date, the one the lists were ranked by: the
    # case-finding score (features/case_finding.py, recomputed from the record at that date; the synthetic MDT's),
    # or riskstrat's own stored score (`risk_scores`, the latest of `score_outcome` at most 35 days before).
    score: Literal["case_finding", "risk_scores"] = "case_finding"
    score_outcome: StrictStr = "emergency_admission"
    exact: tuple[Literal["team_id", "sex", "age_band", "emergency_3m_band", "emergency_12m_band"], ...] = MATCH_COLUMNS
    controls_per_person: Annotated[StrictInt, Field(ge=1, le=10)] = 3
    caliper_sd: Annotated[StrictFloat, Field(gt=0)] = 0.2  # of the score among the people eligible that day
    # People discussed at the MDT in the months before could not be taken on: they are not comparisons.
    review_months: Annotated[StrictInt, Field(ge=0)] = 12
    balance_threshold: Annotated[StrictFloat, Field(gt=0)] = 0.1  # absolute standardised difference


@dataclass(frozen=True)
class AnalysisPlan:
    __pydantic_config__ = ConfigDict(extra="forbid")

    bootstrap_replicates: Annotated[StrictInt, Field(ge=50)] = 500
    seed: StrictInt = 20261124
    confidence: Share = 0.95


@dataclass(frozen=True)
class PowerPlan:
    __pydantic_config__ = ConfigDict(extra="forbid")

    minimum_effect: Share = 0.2  # the smallest relative reduction in the primary outcome worth detecting
    alpha: Share = 0.05
    power: Share = 0.8


@dataclass(frozen=True)
class EvaluationPlan:
    __pydantic_config__ = ConfigDict(extra="forbid")

    id: Annotated[StrictStr, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    title: StrictStr
    question: StrictStr
    primary_outcome: StrictStr = "emergency_admissions"
    outcomes: tuple[StrictStr, ...] = (
        "emergency_admissions",
        "ae_attendances",
        "bed_days",
        "total_cost",
        "care_home_admission",
        "death",
    )
    safety_outcomes: tuple[StrictStr, ...] = ("death",)
    baseline_months: Annotated[StrictInt, Field(ge=1, le=36)] = 12
    follow_up_months: Annotated[StrictInt, Field(ge=1, le=36)] = 12
    comparisons: tuple[Literal["naive_before_after", "matched_did", "randomised_margin"], ...] = (
        "naive_before_after",
        "matched_did",
        "randomised_margin",
    )
    replaces: StrictStr | None = None  # the id of the frozen plan this one supersedes
    matching: MatchingPlan = field(default_factory=MatchingPlan)
    analysis: AnalysisPlan = field(default_factory=AnalysisPlan)
    power: PowerPlan = field(default_factory=PowerPlan)


_PLAN = TypeAdapter(EvaluationPlan)


def plan_from_dict(data: dict, source: str) -> EvaluationPlan:
    try:
        plan = _PLAN.validate_python(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise PlanError(f"{source}: {where}: {error['msg']}") from None
    known = evaluation_outcomes()
    unknown = [o for o in (*plan.outcomes, *plan.safety_outcomes) if o not in known]
    if unknown:
        raise PlanError(f"{source}: outcomes: unknown {', '.join(map(repr, unknown))} (known: {', '.join(known)})")
    if plan.primary_outcome not in plan.outcomes or known[plan.primary_outcome].kind != "count":
        raise PlanError(f"{source}: primary_outcome = {plan.primary_outcome!r}: must be a count among outcomes")
    if plan.replaces == plan.id:
        raise PlanError(f"{source}: replaces = {plan.replaces!r}: a new plan needs a new id")
    return plan


def load_plan(path: Path | None = None) -> tuple[EvaluationPlan, str]:
    """The plan in `path` (default: the shipped plan) and its text."""
    path = path or DEFAULT_PLAN
    try:
        text = Path(path).read_text()
        data = tomllib.loads(text)
    except FileNotFoundError:
        raise PlanError(f"evaluation plan {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PlanError(f"{path}: cannot be read as TOML ({exc})") from None
    return plan_from_dict(data, str(path)), text


def plan_hash(plan: EvaluationPlan) -> str:
    """sha256 of the validated plan in canonical JSON (comments and layout do not count)."""
    canonical = json.dumps(asdict(plan), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
