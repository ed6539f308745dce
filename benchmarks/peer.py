"""The floor and the peer that the feature build is measured against.

Floor: one DuckDB statement that scans every event row the feature build reads (rows dated before as_of in
every activity table, plus the persons, opt-out and condition registers) and computes a count and a sum per
table. Nothing can read those rows faster from this warehouse, so feature build / floor says how much the
features cost beyond reading their inputs.

Peers: the 12-month-window count and cost features written the way a typical analyst would, in plain pandas
(load each table into a DataFrame, filter to the window, `groupby("person_id")`, merge onto the people,
fill the gaps with 0) and, the strongest peer, in DuckDB SQL where the data already is (one grouped statement
per table with a FILTER clause per column, left-joined onto the eligible people). `riskstrat_window_features`
computes the same columns with riskstrat's own feature functions; `compare` checks a peer and riskstrat agree
exactly (counts) or to 1e-9 relative (costs).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl

from data_contracts.dates import add_months
from data_contracts.tables import TABLES
from features.build import eligible_people
from features.catalogue import CATALOGUE, gp_event_feature_stems
from features.costs import SETTING_COST_COLUMNS
from features.hospital import (
    ELECTIVE_ADMISSION_METHODS,
    EMERGENCY_ADMISSION_METHODS,
    OP_ATTENDED,
    OP_DID_NOT_ATTEND,
    ae_attendances,
    hospital_spells,
    outpatient_appointments,
)
from features.prescribing import prescribing
from features.primary_community import community_contacts, gp_contacts
from pipelines.warehouse import read_tables

# Activity tables and the date that places a row before or after as_of.
EVENT_DATES: dict[str, str] = {
    "apc_spells": "admission_date",
    "ae_attendances": "arrival_date",
    "op_appointments": "appointment_date",
    "gp_events": "event_date",
    "community_contacts": "contact_date",
    "prescriptions": "issue_date",
    "asc_events": "event_start_date",
    "conditions": "recorded_date",
}
SUMMED_COLUMN: dict[str, str] = {"asc_events": "weekly_cost", "conditions": "recorded_date"}
PEER_TABLES = (
    "persons",
    "opt_outs",
    "apc_spells",
    "ae_attendances",
    "op_appointments",
    "gp_events",
    "community_contacts",
    "prescriptions",
)
# What the analyst reads: the columns these features use (whole tables would need about 16 GiB at 1M people).
PEER_READS: dict[str, tuple[str, ...]] = {
    "persons": ("person_id", "birth_year", "birth_month", "date_of_death"),
    "opt_outs": ("person_id",),
    "apc_spells": ("person_id", "admission_date", "discharge_date", "admission_method", "cost"),
    "ae_attendances": ("person_id", "arrival_date", "cost"),
    "op_appointments": ("person_id", "appointment_date", "attendance_status", "cost"),
    "gp_events": ("person_id", "event_date", "event_type", "cost"),
    "community_contacts": ("person_id", "contact_date", "attended", "cost"),
    "prescriptions": ("person_id", "issue_date", "items", "cost"),
}


def peer_count_columns() -> list[str]:
    gp = [f"{stem}_12m" for stem in gp_event_feature_stems().values()]
    return [
        "emergency_admissions_12m",
        "elective_admissions_12m",
        "ae_attendances_12m",
        "op_attendances_12m",
        "op_dnas_12m",
        *gp,
        "community_contacts_12m",
        "prescription_items_12m",
    ]


# The activity costs; social care's costing rule (weeks of a service inside the window) is left out of the peer.
PEER_COST_COLUMNS = tuple(c for c in SETTING_COST_COLUMNS if c != "cost_social_care_12m")


def peer_columns() -> list[str]:
    return [*peer_count_columns(), *PEER_COST_COLUMNS]


# ------------------------------------------------------------------------------------------------- the floor


def floor_scan(db_path: Path, as_of: date) -> int:
    """Count and sum every event row before as_of in every table the feature build reads; returns the rows."""
    parts = []
    for table, date_column in EVENT_DATES.items():
        summed = SUMMED_COLUMN.get(table, "cost")
        summed_expr = f"sum(epoch({summed}))" if summed == date_column else f"sum({summed})"
        parts.append(f"SELECT '{table}' AS t, count(*) AS n, {summed_expr} AS s FROM {table} WHERE {date_column} < $1")
    parts.append("SELECT 'persons', count(*), sum(birth_year) FROM persons")
    parts.append("SELECT 'opt_outs', count(*), 0 FROM opt_outs")
    with duckdb.connect(str(db_path), read_only=True) as con:
        rows = con.sql(" UNION ALL ".join(parts), params=[as_of]).fetchall()
    return int(sum(row[1] for row in rows))


def floor_grouped(db_path: Path, as_of: date) -> int:
    """The per-person floor: the same rows, but a count and a sum per person per table (one DuckDB statement),
    the least work that yields any per-person figure. Returns the number of (table, person) groups."""
    parts = []
    for table, date_column in EVENT_DATES.items():
        summed = SUMMED_COLUMN.get(table, "cost")
        summed_expr = f"sum(epoch({summed}))" if summed == date_column else f"sum({summed})"
        parts.append(
            f"SELECT person_id, count(*) AS n, {summed_expr} AS s FROM {table} WHERE {date_column} < $1 "
            "GROUP BY person_id"
        )
    parts.append("SELECT person_id, count(*), sum(birth_year) FROM persons GROUP BY person_id")
    query = f"SELECT count(*), sum(n), sum(s) FROM ({' UNION ALL '.join(parts)})"
    with duckdb.connect(str(db_path), read_only=True) as con:
        groups, _, _ = con.sql(query, params=[as_of]).fetchall()[0]
    return int(groups)


# ------------------------------------------------------------------------------------------------- riskstrat


def riskstrat_window_features(db_path: Path, as_of: date) -> pl.DataFrame:
    """The peer's columns from riskstrat's own feature functions (warehouse read included), one row per
    eligible person, sorted by person_id."""
    tables = read_tables(db_path, PEER_TABLES)
    frame = eligible_people(tables, as_of)
    for feature_function in (
        hospital_spells,
        ae_attendances,
        outpatient_appointments,
        gp_contacts,
        community_contacts,
        prescribing,
    ):
        frame = frame.join(feature_function(tables, as_of), on="person_id", how="left")
    columns = peer_columns()
    filled = [
        pl.col(name).fill_null(CATALOGUE[name].default).cast(pl.Float64 if name.startswith("cost") else pl.Int64)
        for name in columns
    ]
    return frame.select("person_id", *filled).sort("person_id").collect()


# ------------------------------------------------------------------------------------------------- the pandas peer


def pandas_window_features(db_path: Path, as_of: date) -> pd.DataFrame:
    """12-month counts and costs as a typical analyst writes them in pandas (warehouse read included)."""
    with duckdb.connect(str(db_path), read_only=True) as con:
        data = {name: con.sql(f"SELECT {', '.join(columns)} FROM {name}").df() for name, columns in PEER_READS.items()}
    end = pd.Timestamp(as_of)
    start = pd.Timestamp(add_months(as_of, -12))

    persons = data["persons"]
    birth_month = persons["birth_month"].fillna(7)
    born = (persons["birth_year"] < as_of.year) | ((persons["birth_year"] == as_of.year) & (birth_month < as_of.month))
    alive = persons["date_of_death"].isna() | (persons["date_of_death"] >= end)
    not_opted_out = ~persons["person_id"].isin(data["opt_outs"]["person_id"])
    people = persons.loc[born & alive & not_opted_out, ["person_id"]]

    def last_12_months(name: str, column: str) -> pd.DataFrame:
        table = data[name]
        return table[(table[column] >= start) & (table[column] < end)].copy()

    spells = last_12_months("apc_spells", "admission_date")
    spells["emergency"] = spells["admission_method"].isin(EMERGENCY_ADMISSION_METHODS)
    spells["elective"] = spells["admission_method"].isin(ELECTIVE_ADMISSION_METHODS)
    spells["known_cost"] = spells["cost"].where(spells["discharge_date"] < end)
    hospital = spells.groupby("person_id").agg(
        emergency_admissions_12m=("emergency", "sum"),
        elective_admissions_12m=("elective", "sum"),
        cost_hospital_12m=("known_cost", "sum"),
    )

    ae = (
        last_12_months("ae_attendances", "arrival_date")
        .groupby("person_id")
        .agg(ae_attendances_12m=("arrival_date", "count"), cost_ae_12m=("cost", "sum"))
    )

    op = last_12_months("op_appointments", "appointment_date")
    op["attended"] = op["attendance_status"].isin(OP_ATTENDED)
    op["missed"] = op["attendance_status"].isin(OP_DID_NOT_ATTEND)
    outpatients = op.groupby("person_id").agg(
        op_attendances_12m=("attended", "sum"), op_dnas_12m=("missed", "sum"), cost_outpatient_12m=("cost", "sum")
    )

    gp = last_12_months("gp_events", "event_date")
    gp_counts = pd.crosstab(gp["person_id"], gp["event_type"])
    gp_counts = gp_counts.rename(columns={code: f"{stem}_12m" for code, stem in gp_event_feature_stems().items()})
    gp_counts["cost_gp_12m"] = gp.groupby("person_id")["cost"].sum()

    contacts = last_12_months("community_contacts", "contact_date")
    contacts["seen"] = contacts["attended"].fillna(True).astype(bool)
    community = contacts.groupby("person_id").agg(
        community_contacts_12m=("seen", "sum"), cost_community_12m=("cost", "sum")
    )

    rx = (
        last_12_months("prescriptions", "issue_date")
        .groupby("person_id")
        .agg(prescription_items_12m=("items", "sum"), cost_prescribing_12m=("cost", "sum"))
    )

    result = people.set_index("person_id")
    for part in (hospital, ae, outpatients, gp_counts, community, rx):
        result = result.join(part, how="left")
    columns = peer_columns()
    for name in columns:
        if name not in result.columns:  # an event type nobody had in the window
            result[name] = 0
    result = result[columns].fillna(0)
    result[peer_count_columns()] = result[peer_count_columns()].astype("int64")
    return result.sort_index().reset_index()


# ------------------------------------------------------------------------------------------------- the SQL peer


def _sql_list(values: object) -> str:
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in sorted(values))  # type: ignore[call-overload]


def sql_window_features(db_path: Path, as_of: date) -> pl.DataFrame:
    """The same columns as one DuckDB statement: each table grouped once with a FILTER per column, joined onto
    the eligible people (born before as_of's month, alive at as_of, not opted out); sorted by person_id."""
    gp_stems = gp_event_feature_stems()
    gp_counts = ",\n".join(
        f"count(*) FILTER (WHERE event_type = '{code}') AS {stem}_12m" for code, stem in gp_stems.items()
    )
    window = "{column} >= $start AND {column} < $end"
    query = f"""
    WITH people AS (
        SELECT person_id FROM persons
        WHERE (birth_year < $year OR (birth_year = $year AND coalesce(birth_month, 7) < $month))
          AND (date_of_death IS NULL OR date_of_death >= $end)
          AND person_id NOT IN (SELECT person_id FROM opt_outs WHERE person_id IS NOT NULL)
    ),
    hospital AS (
        SELECT person_id,
            count(*) FILTER (WHERE admission_method IN ({_sql_list(EMERGENCY_ADMISSION_METHODS)}))
                AS emergency_admissions_12m,
            count(*) FILTER (WHERE admission_method IN ({_sql_list(ELECTIVE_ADMISSION_METHODS)}))
                AS elective_admissions_12m,
            sum(cost) FILTER (WHERE discharge_date < $end) AS cost_hospital_12m
        FROM apc_spells WHERE {window.format(column="admission_date")} GROUP BY person_id
    ),
    ae AS (
        SELECT person_id, count(*) AS ae_attendances_12m, sum(cost) AS cost_ae_12m
        FROM ae_attendances WHERE {window.format(column="arrival_date")} GROUP BY person_id
    ),
    op AS (
        SELECT person_id,
            count(*) FILTER (WHERE attendance_status IN ({_sql_list(OP_ATTENDED)})) AS op_attendances_12m,
            count(*) FILTER (WHERE attendance_status IN ({_sql_list(OP_DID_NOT_ATTEND)})) AS op_dnas_12m,
            sum(cost) AS cost_outpatient_12m
        FROM op_appointments WHERE {window.format(column="appointment_date")} GROUP BY person_id
    ),
    gp AS (
        SELECT person_id, {gp_counts}, sum(cost) AS cost_gp_12m
        FROM gp_events WHERE {window.format(column="event_date")} GROUP BY person_id
    ),
    community AS (
        SELECT person_id, count(*) FILTER (WHERE coalesce(attended, true)) AS community_contacts_12m,
            sum(cost) AS cost_community_12m
        FROM community_contacts WHERE {window.format(column="contact_date")} GROUP BY person_id
    ),
    rx AS (
        SELECT person_id, sum(items) AS prescription_items_12m, sum(cost) AS cost_prescribing_12m
        FROM prescriptions WHERE {window.format(column="issue_date")} GROUP BY person_id
    )
    SELECT person_id, {
        ", ".join(
            f"coalesce({name}, 0)::{'DOUBLE' if name.startswith('cost') else 'BIGINT'} AS {name}"
            for name in peer_columns()
        )
    }
    FROM people
    LEFT JOIN hospital USING (person_id) LEFT JOIN ae USING (person_id) LEFT JOIN op USING (person_id)
    LEFT JOIN gp USING (person_id) LEFT JOIN community USING (person_id) LEFT JOIN rx USING (person_id)
    ORDER BY person_id
    """
    params = {"start": add_months(as_of, -12), "end": as_of, "year": as_of.year, "month": as_of.month}
    with duckdb.connect(str(db_path), read_only=True) as con:
        return con.sql(query, params=params).pl()


def compare(riskstrat_path: Path, peer_path: Path) -> dict[str, object]:
    """Do the two implementations agree? Same people; counts equal; costs within 1e-9 relative."""
    ours = pl.read_parquet(riskstrat_path).sort("person_id")
    theirs = pl.read_parquet(peer_path).sort("person_id")
    same_people = ours["person_id"].equals(theirs["person_id"])
    mismatched: list[str] = []
    if same_people:
        for name in peer_columns():
            a = ours[name].to_numpy().astype(np.float64)
            b = theirs[name].to_numpy().astype(np.float64)
            if not np.allclose(a, b, rtol=1e-9, atol=1e-6):
                mismatched.append(name)
    return {
        "people": ours.height,
        "peer_people": theirs.height,
        "same_people": same_people,
        "columns": len(peer_columns()),
        "mismatched_columns": mismatched,
        "equal": same_people and not mismatched,
    }


assert set(EVENT_DATES) <= set(TABLES)
