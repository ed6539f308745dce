"""The team's Excel workbook: sheets List, Reasons, Changes and About, written row by row (a write-only
workbook) with named styles, frozen identity columns and filters."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font, NamedStyle, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.properties import PageSetupProperties

from data_contracts.outcomes import OUTCOMES
from pipelines.publish.cells import workbook_value
from pipelines.publish.charts import tier_colours
from pipelines.publish.publication import REID_COLUMNS, Provenance
from pipelines.publish.wording import (
    CHANGE_WORDS,
    LEAVER_WORDS,
    PROTECTIVE_MARKING,
    TIER_ORDER,
    how_to_read,
    outcome_words,
    uk_date,
)

if TYPE_CHECKING:
    from pipelines.publish.teams import TeamData


@dataclass(frozen=True)
class _Col:
    key: str
    header: str
    style: str | None = None  # a named style from _register_styles; "tier": the tier's colours; "link": page link
    width: float | None = None


LIST_SHEET = (
    _Col("rank", "Rank", width=7),
    _Col("person_id", "Person ID", "link"),
    _Col("age_band", "Age band", width=10),
    _Col("sex", "Sex", width=9),
    _Col("gp_practice", "GP practice"),
    _Col("tier", "Tier", "tier", width=11),
    _Col("risk", "Risk", "rs_pct", width=9),
    _Col("change", "Change since last week", width=12),
    _Col("previous_rank", "Rank last week", width=9),
    _Col("reasons", "Main reasons", "rs_wrap", width=70),
    *(_Col(o.risk_column, f"{o.label} risk", "rs_pct", width=13) for o in OUTCOMES),
    _Col("social_care_package", "Social care package", width=36),
    _Col("in_care_home", "In a care home", width=10),
    _Col("recent_discharge", "Discharged from hospital in last 30 days", width=14),
    _Col("acsc_admissions_12m", "Emergency admissions for ambulatory care sensitive conditions, 12 months", width=16),
    _Col("acsc_conditions", "Ambulatory care sensitive conditions", width=30),
    _Col("on_last_weeks_list", "On last week's list", width=10),
)
REASONS_SHEET = (
    _Col("rank", "List rank", width=8),
    _Col("person_id", "Person ID"),
    _Col("reason_rank", "Reason", width=8),
    _Col("phrase", "Reason in plain words", "rs_wrap", width=55),
    _Col("direction", "Effect", width=12),
    _Col("points", "Change in risk (percentage points)", "rs_points", width=14),
    _Col("feature_label", "Factor", width=30),
    _Col("value", "Value", width=14),
    _Col("feature", "Model feature", width=28),
    _Col("contribution", "Contribution (log-odds)", "rs_signed", width=13),
)
CHANGES_SHEET = (
    _Col("what", "What changed", width=26),
    _Col("rank", "Rank now", width=9),
    _Col("previous_rank", "Rank last week", width=9),
    _Col("person_id", "Person ID"),
    _Col("tier", "Tier", "tier", width=11),
    _Col("risk", "Risk", "rs_pct", width=9),
    _Col("note", "Note", width=50),
)


def _register_styles(wb: Workbook) -> None:
    """Named styles, registered once per workbook: a write-only workbook streams rows, and a named style is
    far cheaper per cell than building fonts and fills for each one (5,000 people: seconds, not minutes)."""
    top = Alignment(vertical="top")
    styles = [
        NamedStyle(
            "rs_header",
            font=Font(bold=True),
            fill=PatternFill("solid", fgColor="E4E9F0"),
            alignment=Alignment(wrap_text=True, vertical="top"),
        ),
        NamedStyle("rs_pct", number_format="0.0%", alignment=top),
        NamedStyle("rs_signed", number_format="+0.00;-0.00;0.00", alignment=top),
        # Percentage points stored as a fraction of 1, like the risks: 0.031 shows as +3.1.
        NamedStyle("rs_points", number_format="+0.0%;-0.0%;0.0%", alignment=top),
        NamedStyle("rs_wrap", alignment=Alignment(wrap_text=True, vertical="top")),
        NamedStyle("rs_label", font=Font(bold=True), alignment=top),
        NamedStyle("rs_note", font=Font(italic=True)),
    ]
    for tier in (*TIER_ORDER, ""):
        bg, fg = tier_colours(tier)
        styles.append(
            NamedStyle(
                _tier_style(tier),
                font=Font(bold=True, color=fg.lstrip("#")),
                fill=PatternFill("solid", fgColor=bg.lstrip("#")),
                alignment=top,
            )
        )
    for style in styles:
        wb.add_named_style(style)


def _tier_style(tier: str | None) -> str:
    return f"rs_tier_{(tier if tier in TIER_ORDER else 'other').replace(' ', '_')}"


def _with_reid_cols(cols: Sequence[_Col], reidentified: bool) -> list[_Col]:
    if not reidentified:
        return list(cols)
    out: list[_Col] = []
    for col in cols:
        out.append(col)
        if col.key == "person_id":
            out += [_Col("nhs_number", "NHS number", width=13), _Col("name", "Name", width=24)]
    return out


def workbook(team: TeamData, prov: Provenance) -> tuple[bytes, dict[str, int]]:
    wb = Workbook(write_only=True)
    _register_styles(wb)
    list_rows = [_excel_values(r) for r in team.rows.iter_rows(named=True)]
    _write_table(wb.create_sheet("List"), _with_reid_cols(LIST_SHEET, team.reidentified), list_rows)
    reasons_cols = _with_reid_cols(REASONS_SHEET, team.reidentified)
    reasons = [_reason_values(r) for r in team.reasons.iter_rows(named=True)]
    _write_table(wb.create_sheet("Reasons"), reasons_cols, reasons)
    changes = _change_rows(team)
    ws_changes = wb.create_sheet("Changes")
    _write_table(ws_changes, _with_reid_cols(CHANGES_SHEET, team.reidentified), changes)
    about = wb.create_sheet("About")
    _print_setup(about)
    _write_about(about, team, prov)
    buffer = io.BytesIO()
    wb.save(buffer)
    sheets = {"List": team.rows.height, "Reasons": team.reasons.height, "Changes": len(changes) + 1, "About": 0}
    return buffer.getvalue(), sheets


def _excel_values(row: dict[str, Any]) -> dict[str, Any]:
    return {k: ("Yes" if v else "No") if isinstance(v, bool) else v for k, v in row.items()}


def _reason_values(row: dict[str, Any]) -> dict[str, Any]:
    """A reason's value as a number when it is one, so the column sorts and sums as numbers."""
    value = row.get("value")
    try:
        number: Any = float(value) if value is not None else None
    except ValueError:
        number = value
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    return {**row, "value": number}


def _print_setup(ws: Any) -> None:
    """A4 landscape, one page wide, the header row on every page, the protective marking top and bottom."""
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = "9"  # A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.oddHeader.center.text = PROTECTIVE_MARKING
    ws.oddFooter.center.text = PROTECTIVE_MARKING
    ws.oddFooter.right.text = "Page &P of &N"


def _change_rows(team: TeamData) -> list[dict[str, Any]]:
    """Movers from this week's list, then the leavers (the guard has dropped any who opted out)."""
    rows: list[dict[str, Any]] = []
    for change, (what, note) in CHANGE_WORDS.items():
        for r in team.rows.filter(pl.col("change") == change).iter_rows(named=True):
            rows.append({**r, "what": what, "note": note})
    for r in team.leavers.iter_rows(named=True):
        reason = r["reason"]
        rows.append({**r, "what": f"Left the list: {reason}", "note": LEAVER_WORDS.get(reason, reason)})
    return rows


def _styled(ws: Any, value: Any, style: str) -> WriteOnlyCell:
    return workbook_value(ws, value, style)


def _write_table(ws: Any, cols: Sequence[_Col], records: Sequence[dict[str, Any]]) -> None:
    """Header in bold, frozen below the header and beside the identity columns, autofilter, widths, formats.

    Write-only sheets write widths and panes before the rows, so those are set first."""
    for i, col in enumerate(cols, start=1):
        ws.column_dimensions[get_column_letter(i)].width = col.width or _fit_width(col, records)
    # Freeze the columns that say who the person is, so they stay in view when scrolling right.
    id_cols = [i for i, c in enumerate(cols, start=1) if c.key in ("person_id", *REID_COLUMNS)]
    ws.freeze_panes = f"{get_column_letter((max(id_cols) if id_cols else 0) + 1)}2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(cols))}{len(records) + 1}"
    _print_setup(ws)
    ws.print_title_rows = "1:1"
    ws.append([_styled(ws, c.header, "rs_header") for c in cols])
    for record in records:
        ws.append([_excel_cell(ws, record.get(c.key), c) for c in cols])


def _excel_cell(ws: Any, value: Any, col: _Col) -> Any:
    if col.style is None or value is None:
        return workbook_value(ws, value)
    if col.style == "link":
        # The person's page, next to the workbook in the team's folder.
        cell = _styled(ws, value, "Hyperlink")
        cell.hyperlink = f"people/{value}.html"
        return cell
    return _styled(ws, value, _tier_style(value) if col.style == "tier" else col.style)


def _fit_width(col: _Col, records: Sequence[dict[str, Any]]) -> float:
    longest = max((len(str(r.get(col.key) or "")) for r in records), default=0)
    return float(min(max(len(col.header), longest) + 2, 50))


def _about_rows(team: TeamData, prov: Provenance) -> list[tuple[str, str]]:
    rows = [
        ("Team", f"{team.team_name} ({team.team_id})"),
        ("As of", uk_date(prov.as_of)),
        ("Run id", prov.run_id),
        ("Ranked by risk of", outcome_words(prov.ranking_outcome)),
        ("Model versions", prov.model_versions_text),
        ("Data batches", prov.data_batches_text),
        ("Costs", f"in {prov.cost_currency}, as the source recorded them (never converted)"),
        (
            "Reasons",
            "Each reason's change in risk is in percentage points, in the order shown, starting from a person with "
            "the model's average score; with what lowers the risk and all other factors together they add up to "
            f"the person's risk. The model's own contributions ({prov.explain_scale}) are in the last column of "
            "the Reasons sheet and in the team's technical file.",
        ),
        ("People listed", str(team.rows.height)),
        (
            "Identifiers",
            "Person IDs are pseudonymised. "
            + (
                "Your team's NHS numbers and names were added from your own key."
                if team.reidentified
                else "Re-identify through your practice's own key."
            ),
        ),
    ]
    sentences = how_to_read(prov.ranking_outcome, prov.calibration_warnings)
    rows += [("How to read this list" if i == 0 else "", text) for i, text in enumerate(sentences)]
    return rows


def _write_about(ws: Any, team: TeamData, prov: Provenance) -> None:
    ws.column_dimensions["A"].width = 26
    ws.column_dimensions["B"].width = 110
    for label, text in _about_rows(team, prov):
        ws.append([_styled(ws, label, "rs_label"), _styled(ws, text, "rs_wrap")])
