"""Derived cost columns: imputation of missing activity costs and the CLD weekly cost of social care.

Every rule is a vectorised Polars expression over already validated columns (codes are current codes:
aliases were mapped by validation). Unit costs come from `reference/unit_costs.csv`; this module only
names which setting applies, so a new price year is a change to the CSV, not to code.

Rules (one place, so the data dictionary and the report can quote them):
- apc_spells: admission method group emergency, maternity or other -> `emergency_admission`;
  elective -> `elective_admission` (a day case cannot be told apart from an elective spell in the
  contract, so it is priced as elective: an overestimate for day cases).
- ae_attendances: `ae_attendance`.
- op_appointments: attended (attendance status group "attended") -> `outpatient_attendance`; any other
  status costs 0.
- gp_events: event type `did_not_attend` -> 0; staff role gp -> `gp_consultation`; nurse or other ->
  `practice_nurse_consultation`; a missing role is priced as a GP consultation (most recorded contacts are).
- community_contacts: not attended (`attended` false) -> 0; otherwise by service (district nursing,
  community matron, intermediate care, therapy; mental health and other -> `district_nurse_contact`).
  A missing `attended` counts as attended: the contact was recorded.
- prescriptions: no rule; a missing cost stays empty.
- A batch whose costs are in another currency than the unit costs (GBP) gets no imputed costs at all: the
  reference prices would mix currencies, so a missing cost stays empty (and counts as 0).
- asc_events: weekly cost by the CLD rule (unit cost x weekly factor of the cost frequency; hourly,
  daily and per-session costs x planned units per week; a one-off cost counts once). A Service with no
  unit cost is imputed by service type group: residential -> `residential_care` per week, nursing ->
  `nursing_care` per week, reablement -> one `reablement` episode spread over
  `REABLEMENT_EPISODE_WEEKS` weeks; anything else stays empty. `unit_cost` keeps the value received
  (empty); the imputation lives in `weekly_cost` and `cost_imputed`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import polars as pl

from data_contracts.reference import REFERENCE_CURRENCY, codelist, unit_cost

# A reablement (ST-Max) episode is typically up to six weeks; the reference cost is per episode.
REABLEMENT_EPISODE_WEEKS = 6

APC_SETTING_BY_METHOD_GROUP: dict[str, str] = {
    "emergency": "emergency_admission",
    "elective": "elective_admission",
    "maternity": "emergency_admission",
    "other": "emergency_admission",
}
GP_SETTING_BY_ROLE: dict[str, str] = {
    "gp": "gp_consultation",
    "nurse": "practice_nurse_consultation",
    "other": "practice_nurse_consultation",
}
GP_SETTING_MISSING_ROLE = "gp_consultation"
COMMUNITY_SETTING_BY_SERVICE: dict[str, str] = {
    "district_nursing": "district_nurse_contact",
    "community_matron": "community_matron_contact",
    "intermediate_care": "intermediate_care_contact",
    "therapy": "therapy_contact",
    "mental_health": "district_nurse_contact",
    "other": "district_nurse_contact",
}
ASC_WEEKLY_SETTING_BY_SERVICE_GROUP: dict[str, str] = {
    "residential": "residential_care",
    "nursing": "nursing_care",
}
ASC_EPISODE_SETTING_BY_SERVICE_GROUP: dict[str, str] = {"reablement": "reablement"}


def settings_used() -> set[str]:
    """Every unit-cost setting named here (a test checks each exists in unit_costs.csv)."""
    return {
        *APC_SETTING_BY_METHOD_GROUP.values(),
        *GP_SETTING_BY_ROLE.values(),
        GP_SETTING_MISSING_ROLE,
        *COMMUNITY_SETTING_BY_SERVICE.values(),
        *ASC_WEEKLY_SETTING_BY_SERVICE_GROUP.values(),
        *ASC_EPISODE_SETTING_BY_SERVICE_GROUP.values(),
        "ae_attendance",
        "outpatient_attendance",
    }


def _price_by_code(column: str, setting_by_code: Mapping[str, str]) -> pl.Expr:
    """Unit cost of each code's setting; codes without a setting give null."""
    prices = {code: unit_cost(setting) for code, setting in setting_by_code.items()}
    return pl.col(column).replace_strict(prices, default=None, return_dtype=pl.Float64)


def _setting_by_code_group(codelist_name: str, setting_by_group: Mapping[str, str]) -> dict[str, str]:
    groups = codelist(codelist_name).group
    return {code: setting_by_group[g] for code, g in groups.items() if g in setting_by_group}


def apc_imputed_cost() -> pl.Expr:
    return _price_by_code("admission_method", _setting_by_code_group("admission_method", APC_SETTING_BY_METHOD_GROUP))


def ae_imputed_cost() -> pl.Expr:
    return pl.lit(unit_cost("ae_attendance"), dtype=pl.Float64)


def op_imputed_cost() -> pl.Expr:
    attended = pl.col("attendance_status").is_in(codelist("op_attendance_status").codes_in_group("attended"))
    return pl.when(attended).then(pl.lit(unit_cost("outpatient_attendance"))).otherwise(pl.lit(0.0))


def gp_imputed_cost() -> pl.Expr:
    return (
        pl.when(pl.col("event_type") == "did_not_attend")
        .then(pl.lit(0.0))
        .when(pl.col("staff_role").is_null())
        .then(pl.lit(unit_cost(GP_SETTING_MISSING_ROLE)))
        .otherwise(_price_by_code("staff_role", GP_SETTING_BY_ROLE))
    )


def community_imputed_cost() -> pl.Expr:
    return (
        pl.when(pl.col("attended").eq(False))  # null (unknown) is priced as attended
        .then(pl.lit(0.0))
        .otherwise(_price_by_code("service", COMMUNITY_SETTING_BY_SERVICE))
    )


IMPUTED_COST: dict[str, Callable[[], pl.Expr]] = {
    "apc_spells": apc_imputed_cost,
    "ae_attendances": ae_imputed_cost,
    "op_appointments": op_imputed_cost,
    "gp_events": gp_imputed_cost,
    "community_contacts": community_imputed_cost,
}
"""Tables whose missing `cost` is imputed. Tables with a `cost` column not listed (prescriptions) keep it empty."""


def with_imputed_cost(frame: pl.DataFrame, table_name: str, impute: bool = True) -> pl.DataFrame:
    """Fill a missing `cost` by the table's rule (when `impute`) and flag it in `cost_imputed`."""
    rule = IMPUTED_COST.get(table_name) if impute else None
    imputed = rule().cast(pl.Float64) if rule else pl.lit(None, dtype=pl.Float64)
    return frame.with_columns(
        pl.coalesce(pl.col("cost"), imputed).alias("cost"),
        (pl.col("cost").is_null() & imputed.is_not_null()).alias("cost_imputed"),
    )


def cld_weekly_factor() -> pl.Expr:
    """Units per week of `cost_frequency_unit_type`: the numeric factors from the code list's `group`;
    "planned" -> planned_units_per_week; "once" -> 1 (a one-off cost counts once, whole)."""
    groups = codelist("asc_cost_frequency").group
    numeric = {code: float(g) for code, g in groups.items() if g not in ("planned", "once")}
    planned = [code for code, g in groups.items() if g == "planned"]
    once = [code for code, g in groups.items() if g == "once"]
    frequency = pl.col("cost_frequency_unit_type")
    return (
        pl.when(frequency.is_in(planned))
        .then(pl.col("planned_units_per_week"))
        .when(frequency.is_in(once))
        .then(pl.lit(1.0))
        .otherwise(frequency.replace_strict(numeric, default=None, return_dtype=pl.Float64))
    )


def cld_weekly_cost() -> pl.Expr:
    """CLD rule: unit cost x units per week (null when the frequency or planned units are missing)."""
    return pl.col("unit_cost") * cld_weekly_factor()


def asc_imputed_weekly_cost() -> pl.Expr:
    """Weekly reference cost of a Service by service type group; null when no rule applies."""
    weekly = _setting_by_code_group("asc_service_type", ASC_WEEKLY_SETTING_BY_SERVICE_GROUP)
    episode = _setting_by_code_group("asc_service_type", ASC_EPISODE_SETTING_BY_SERVICE_GROUP)
    prices = {code: unit_cost(setting) for code, setting in weekly.items()}
    prices |= {code: unit_cost(setting) / REABLEMENT_EPISODE_WEEKS for code, setting in episode.items()}
    return pl.col("service_type").replace_strict(prices, default=None, return_dtype=pl.Float64)


def with_asc_costs(frame: pl.DataFrame, impute: bool = True) -> pl.DataFrame:
    needs_imputation = (pl.col("event_type") == "Service") & pl.col("unit_cost").is_null() & pl.lit(impute)
    imputed = pl.when(needs_imputation).then(asc_imputed_weekly_cost())
    return frame.with_columns(
        pl.coalesce(cld_weekly_cost(), imputed).alias("weekly_cost"),
        imputed.is_not_null().alias("cost_imputed"),
    )


def add_derived_costs(frame: pl.DataFrame, table_name: str, currency: str = REFERENCE_CURRENCY) -> pl.DataFrame:
    """The table's derived cost columns (a no-op for tables without costs); imputation only for batches whose
    costs are in the unit costs' currency."""
    impute = currency == REFERENCE_CURRENCY
    if table_name == "asc_events":
        return with_asc_costs(frame, impute)
    if "cost" in frame.columns:
        return with_imputed_cost(frame, table_name, impute)
    return frame
