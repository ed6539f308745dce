"""Settings owned by the feature layer: outcome definitions.

Plain dataclasses; the `Annotated` constraints are checked when `pipelines.settings.load_settings` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import ConfigDict, Field, StrictBool, StrictFloat, StrictInt


@dataclass
class OutcomeSettings:
    __pydantic_config__ = ConfigDict(extra="forbid")

    horizon_months: Annotated[StrictInt, Field(ge=1, le=60)] = 12
    # SPARRA-style: count death in the horizon as an emergency-admission event.
    death_counts_as_emergency: StrictBool = False
    high_cost_top_fraction: Annotated[StrictFloat, Field(gt=0, lt=1)] = 0.05
    frequent_emergency_admissions: Annotated[StrictInt, Field(ge=1)] = 3
    frequent_ae_attendances: Annotated[StrictInt, Field(ge=1)] = 5
