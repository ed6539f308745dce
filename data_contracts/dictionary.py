"""Render the data dictionary (docs/data_dictionary.md) from the contract declarations."""

from __future__ import annotations

from pathlib import Path

from data_contracts.reference import codelists, unit_costs
from data_contracts.schema import Column, Table
from data_contracts.tables import TABLES

DICTIONARY_PATH = Path(__file__).resolve().parent.parent / "docs" / "data_dictionary.md"


def _rules(column: Column) -> str:
    parts: list[str] = []
    if column.codelist:
        parts.append(f"codes: [{column.codelist}](#code-list-{column.codelist.replace('_', '-')})")
    if column.minimum is not None:
        parts.append(f"≥ {column.minimum:g}")
    if column.maximum is not None:
        parts.append(f"≤ {column.maximum:g}")
    if column.pattern:
        parts.append(f"pattern `{column.pattern}`")
    if column.type == "string" and not column.derived:
        parts.append(f"at most {column.max_length} characters, no control characters")
    if column.event_date:
        parts.append("not after extract date, not before birth")
    if column.year_not_after_extract:
        parts.append("not after the extract date's year")
    if column.derived:
        parts.append("set by the loader")
    return "; ".join(parts)


def _table_section(table: Table) -> list[str]:
    lines = [f"## `{table.name}`", "", table.description, "", f"Grain (one row per): `{', '.join(table.grain)}`."]
    if table.dated_by:
        lines += ["", f"Placed in time by `{table.dated_by}`: windows and outcome horizons count rows by this date."]
    if table.notes:
        lines += ["", table.notes]
    lines += ["", "| column | type | required | description | rules |", "|---|---|---|---|---|"]
    for c in table.all_columns:
        required = "yes" if c.required else ""
        lines.append(f"| `{c.name}` | {c.type} | {required} | {c.description} | {_rules(c)} |")
    for rule in table.order_rules:
        lines.append(f"\nRule: `{rule.later}` must not be before `{rule.earlier}` (quarantine reason `{rule.reason}`).")
    for need in table.required_when:
        values = ", ".join(f"`{v}`" for v in need.values)
        lines.append(
            f"\nRule: `{need.column}` is required when `{need.when_column}` is {values} "
            f"(quarantine reason `{need.reason}`)."
        )
    return [*lines, ""]


def render_data_dictionary() -> str:
    lines = [
        "# riskstrat data dictionary",
        "",
        "Generated from `data_contracts/tables.py` by `riskstrat dictionary`; do not edit by hand.",
        "A batch is a folder with one file per table (`<table>.csv`, `<table>.csv.gz` or `<table>.parquet`, the",
        "name in any case; any table may be absent), `batch.json` (`batch_id`, `extract_date`, `currency`, `kind`",
        "and `files`: each file's name, table, rows and sha256) and `batch.complete`, written last (see",
        "`data_contracts/batch.py`). A batch not whole yet waits; a file the manifest does not list is refused.",
        "",
    ]
    for table in TABLES.values():
        lines += _table_section(table)
    lines += ["# Code lists", ""]
    for cl in codelists().values():
        lines += [
            f"## Code list `{cl.name}`",
            "",
            f"Source: {cl.source} ({cl.year}).",
            "",
            "| code | label | group |",
            "|---|---|---|",
        ]
        lines += [f"| `{code}` | {label} | {cl.group.get(code, '')} |" for code, label in cl.codes.items()]
        if cl.aliases:
            lines += ["", "Accepted legacy values: " + "; ".join(f"`{a}` → `{c}`" for a, c in cl.aliases.items()) + "."]
        lines.append("")
    lines += ["# Unit costs", "", "| setting | unit | GBP | price year | source |", "|---|---|---|---|---|"]
    lines += [
        f"| {u.setting} | {u.unit} | {u.cost_gbp:g} | {u.price_year} | {u.source} |" for u in unit_costs().values()
    ]
    return "\n".join(lines) + "\n"


def write_data_dictionary(path: Path = DICTIONARY_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_data_dictionary(), encoding="utf-8")
    return path
