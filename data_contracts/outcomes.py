"""The outcomes riskstrat predicts, each declared once, and the definitions' parameters (`[outcomes]` settings).

Every layer reads this module: the settings (which outcomes can be trained), the feature layer's labels
(`features.outcomes.label_outcomes`), training (the prior-use baseline's column), scoring and publishing (each
outcome's risk column and its label on the lists and pages) and the synthetic generator's truth
(`data_contracts.synthetic.truth`, built with the run's own `OutcomeSettings` and recording them beside the
probabilities). It lives in the contract layer so that the generator, which may not import the feature layer,
reads the same definitions as the labels.

An `Outcome` says what it is called, how a person reads it, which column of the training frame ranks "last
year's top users" for it, and who is at risk (who gets a label). What counts as the outcome in the horizon is
computed twice, necessarily: on the published tables (`features.outcomes`) and on the generator's simulated
months (`data_contracts.synthetic.truth`); both take their parameters from `OutcomeSettings` and both build
one column per declared outcome, so an outcome added here without its label fails loudly in each.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StrictBool, StrictFloat, StrictInt


@dataclass
class OutcomeSettings:
    """The parameters of the outcome definitions, shared by the labels and the generator's truth.

    Plain dataclass; the `Annotated` constraints are checked when `pipelines.settings.load_settings` reads them."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    # The horizon after an index date, in calendar months: [index_date, index_date + horizon_months).
    horizon_months: Annotated[StrictInt, Field(ge=1, le=60)] = 12
    # SPARRA-style: count death in the horizon as an emergency-admission event.
    death_counts_as_emergency: StrictBool = False
    high_cost_top_fraction: Annotated[StrictFloat, Field(gt=0, lt=1)] = 0.05
    frequent_emergency_admissions: Annotated[StrictInt, Field(ge=1)] = 3
    frequent_ae_attendances: Annotated[StrictInt, Field(ge=1)] = 5

    def to_dict(self) -> dict[str, Any]:
        """The definitions as recorded beside a truth file and compared when it is read."""
        return asdict(self)


# Who is at risk of an outcome, i.e. who gets a label (the others' label is null, and no model sees them).
EVERYONE_ELIGIBLE = "everyone eligible"  # born, alive and not opted out at the index date
NOT_IN_CARE_HOME = "not in a care home"  # eligible and not in a long-term residential or nursing placement
AtRisk = Literal["everyone eligible", "not in a care home"]


@dataclass(frozen=True)
class Outcome:
    name: str
    label: str  # how lists, pages and the workspace name it
    # The training frame's column that ranks "last year's top users" (the prior-use baseline) for this outcome.
    prior_use_column: str
    at_risk: AtRisk
    definition: str  # in plain words; the parameters are `OutcomeSettings`

    @property
    def risk_column(self) -> str:
        """The scored population's calibrated probability of this outcome (and the lists' column)."""
        return f"risk_{self.name}"


# Last year's unplanned care (A&E attendances plus emergency admissions): a column training adds to the frame for
# the unplanned_care baseline, not a model feature.
UNPLANNED_CARE_12M = "unplanned_care_12m"

# In the order lists, pages and the default `training.outcomes` take them.
OUTCOMES: tuple[Outcome, ...] = (
    Outcome(
        "emergency_admission",
        "Emergency admission",
        "emergency_admissions_12m",
        EVERYONE_ELIGIBLE,
        "at least one emergency admission in the horizon (or a death, with death_counts_as_emergency)",
    ),
    Outcome(
        "high_cost",
        "High cost",
        "cost_total_12m",
        EVERYONE_ELIGIBLE,
        "health and social care cost in the horizon in the top high_cost_top_fraction of the eligible people",
    ),
    Outcome(
        "frequent_user",
        "Frequent user of services",
        "emergency_admissions_12m",
        EVERYONE_ELIGIBLE,
        "at least frequent_emergency_admissions emergency admissions or frequent_ae_attendances A&E attendances",
    ),
    Outcome(
        "care_home_admission",
        "Care home admission",
        "emergency_admissions_12m",
        NOT_IN_CARE_HOME,
        "a new long-term residential or nursing care service started in the horizon",
    ),
    Outcome(
        "unplanned_care",
        "Unplanned care",
        UNPLANNED_CARE_12M,
        EVERYONE_ELIGIBLE,
        "at least one A&E attendance or emergency admission in the horizon",
    ),
)
OUTCOME_NAMES: tuple[str, ...] = tuple(o.name for o in OUTCOMES)
OUTCOMES_BY_NAME: dict[str, Outcome] = {o.name: o for o in OUTCOMES}
