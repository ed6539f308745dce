"""Settings owned by the feature layer: outcome definitions."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class OutcomeSettings:
    horizon_months: int = 12
    # SPARRA-style: count death in the horizon as an emergency-admission event.
    death_counts_as_emergency: bool = False
    high_cost_top_fraction: float = 0.05
    frequent_emergency_admissions: int = 3
    frequent_ae_attendances: int = 5
