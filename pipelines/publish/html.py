"""The HTML pages, rendered from the Jinja2 templates in `templates/` (autoescaped) with the styles and scripts
in `static/` inlined, so every page is one self-contained file. Python here only gathers what a template shows;
the wording and the markup are the templates'. Charts are inline SVG from `charts`.
"""

from __future__ import annotations

import re
from datetime import date
from functools import cache
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader, StrictUndefined, select_autoescape
from jinja2.ext import Extension
from markupsafe import Markup

from data_contracts.outcomes import OUTCOMES
from data_contracts.reference import money_prefix
from models.reasons import LOWERS as LOWERS_RISK
from pipelines.publish import charts
from pipelines.publish.charts import TimelineEvent, WaterfallStep, fmt_pct, tier_colours
from pipelines.publish.publication import Provenance
from pipelines.publish.wording import (
    ALL_TIERS,
    LEAVER_WORDS,
    PROTECTIVE_MARKING,
    TIER_ORDER,
    how_to_read,
    impactability,
    outcome_words,
    services,
    tier_order,
    uk_date,
)

if TYPE_CHECKING:
    from pipelines.publish.teams import TeamData

TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")
SETTING_ORDER = ("emergency admission", "elective admission", "A&E", "outpatient", "GP", "community", "social care")


class LineBreaksBetweenTags(Extension):
    """Templates are laid out one element per line; the pages are not. A line break (and the indentation after
    it) between two tags or template statements is dropped when a template is loaded, so a page comes out as
    one compact line of markup. Text keeps its spaces: write a space where one should show between two inline
    elements (a line break there shows nothing)."""

    _BETWEEN_TAGS = re.compile(r"(>|%\}|\}\}|#\})[ \t]*\n\s*(?=<|\{[%{#])")

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        return self._BETWEEN_TAGS.sub(r"\1", source)


def _finalize(value: Any) -> Any:
    """Every `{{ value }}` is escaped with `html.escape` (None prints nothing): the same entities wherever a page
    is rendered, and markup (SVG, macros) passes through unchanged."""
    if value is None:
        return ""
    if hasattr(value, "__html__"):
        return value
    return Markup(escape(str(value)))


@cache
def asset(name: str, local: Path | None = None) -> Markup:
    """A file from `static/`, inlined into a page (CSS, JavaScript); a local folder's `static/<name>` wins."""
    path = local / "static" / name if local is not None else None
    return Markup((path if path is not None and path.is_file() else STATIC_DIR / name).read_text(encoding="utf-8"))


def money(amount: float, currency: str) -> str:
    return f"{money_prefix(currency)}{amount:,.0f}"


def thousands(published: str) -> str:
    """A published count with thousands separators ("1,250"); "*" and other text unchanged."""
    return f"{int(published):,}" if published.isdigit() else published


@cache
def environment(local: Path | None = None) -> Environment:
    """The one Jinja2 environment of the pages (one per process and local folder: worker processes build their
    own). `local` is a local team's folder of templates (and `static/` files) that replace the shipped ones of
    the same name; a local template can extend or include a shipped one as `shipped/<name>`."""
    shipped = FileSystemLoader(TEMPLATES_DIR)
    own = [FileSystemLoader(local)] if local is not None else []
    env = Environment(
        loader=ChoiceLoader([*own, shipped, PrefixLoader({"shipped": shipped})]),
        autoescape=select_autoescape(["html"]),
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
        extensions=[LineBreaksBetweenTags],
    )
    env.globals.update(
        asset=lambda name: asset(name, local),
        tier_colours=tier_colours,
        pct=fmt_pct,
        uk_date=uk_date,
        outcome_words=outcome_words,
        money=money,
        thousands=thousands,
        protective_marking=PROTECTIVE_MARKING,
        all_tiers=ALL_TIERS,
    )
    return env


def render(template: str, local: Path | None = None, **context: Any) -> str:
    return environment(local).get_template(template).render(**context)


# --- a team's list -------------------------------------------------------------------------------------------------


def team_page(team: TeamData, prov: Provenance, local: Path | None = None) -> str:
    rows = [
        {
            **row,
            "tier_sort": TIER_ORDER.index(row["tier"]) if row.get("tier") in TIER_ORDER else len(TIER_ORDER),
            "services": services(row),
            "impact": impactability(row),
            "name": row.get("name"),
            "nhs_number": row.get("nhs_number"),
        }
        for row in team.rows.iter_rows(named=True)
    ]
    leavers = [
        {**r, "name": r.get("name"), "why": LEAVER_WORDS.get(r["reason"], r["reason"])}
        for r in team.leavers.iter_rows(named=True)
    ]
    return render(
        "list.html",
        local,
        team=team,
        prov=prov,
        rows=rows,
        stats=_team_stats(team),
        leavers=leavers,
        how_to_read=how_to_read(prov.ranking_outcome, prov.calibration_warnings),
        rising=[{**r, "name": r.get("name")} for r in team.rising.iter_rows(named=True)],
        rising_rule=prov.rising_risk,
    )


def _team_stats(team: TeamData) -> list[tuple[int, str]]:
    counts = dict(team.rows.group_by(pl.col("tier").fill_null("unknown")).len().iter_rows())
    changes = dict(team.rows.group_by(pl.col("change").fill_null("unknown")).len().iter_rows())
    stats = [(team.rows.height, "people listed")]
    stats += [(counts[t], f"{t} tier") for t in tier_order(list(counts))]
    stats += [(changes.get(c, 0), f"{c} this week") for c in ("new", "rising", "falling")]
    stats.append((team.leavers.height, "left the list"))
    return stats


# --- a person's page -----------------------------------------------------------------------------------------------


def person_page(
    row: dict[str, Any],
    reasons: list[dict[str, Any]],
    activity: list[dict[str, Any]],
    team: TeamData,
    prov: Provenance,
    window: tuple[date, date],
    local: Path | None = None,
) -> str:
    row = {"name": None, "nhs_number": None, **row}
    ordered = sorted(reasons, key=lambda r: r["reason_rank"])
    waterfall = person_waterfall(row, ordered)
    events = _timeline_events(activity, prov.cost_currency)
    risks = [
        (o.label, fmt_pct(row[o.risk_column]), o.name == prov.ranking_outcome)
        for o in OUTCOMES
        if row.get(o.risk_column) is not None
    ]
    return render(
        "person.html",
        local,
        row=row,
        team=team,
        prov=prov,
        risks=risks,
        services=services(row),
        impact=impactability(row),
        waterfall=Markup(waterfall),
        lowers=[r["phrase"] for r in ordered if r["direction"] == LOWERS_RISK],
        timeline=Markup(charts.timeline_svg(events, window[0], window[1], SETTING_ORDER)),
        contacts=len(events),
        window=window,
        recorded_cost=sum(a["cost"] for a in activity if a.get("cost") is not None),
    )


def person_waterfall(row: dict[str, Any], ordered_reasons: list[dict[str, Any]]) -> str:
    """The person's waterfall (SVG): from the average person's risk, through each reason, to theirs. Also drawn
    on the MDT workspace's person page."""
    return charts.waterfall_svg(
        float(row["start_risk"]),
        _waterfall_steps(row, ordered_reasons),
        "Starting point: a person with the model's average score",
        "This person's risk",
    )


def _waterfall_steps(row: dict[str, Any], reasons: list[dict[str, Any]]) -> list[WaterfallStep]:
    """Each shown reason's share of the risk in the order shown, then everything else as one bar, so the chart
    ends exactly at the person's risk on the list."""
    steps = [
        WaterfallStep(
            r["phrase"] or r["feature_label"] or r["feature"],
            float(r["points"] or 0.0),
            f"{r['feature_label']}: {r['value']}" if r["value"] is not None else r["feature_label"],
        )
        for r in reasons
    ]
    rest = float(row["risk"]) - float(row["start_risk"]) - sum(s.contribution for s in steps)
    steps.append(WaterfallStep("All other factors together", rest))
    return steps


def _timeline_events(activity: list[dict[str, Any]], currency: str) -> list[TimelineEvent]:
    events = []
    for a in activity:
        cost = f" · {money(a['cost'], currency)}" if a.get("cost") is not None else ""
        detail = f" · {a['detail']}" if a.get("detail") else ""
        events.append(
            TimelineEvent(a["event_date"], a["setting"], f"{uk_date(a['event_date'])} · {a['setting']}{detail}{cost}")
        )
    return events


# --- the commissioners' summary ------------------------------------------------------------------------------------


def summary_page(summary: pl.DataFrame, prov: Provenance, teams: dict[str, str], local: Path | None = None) -> str:
    by_tier = summary.filter((pl.col("breakdown") == "all people") & (pl.col("tier") != ALL_TIERS))
    items = [
        charts.BarItem(r["tier"], _published_number(r["people"]), thousands(r["people"]), tier_colours(r["tier"])[0])
        for r in by_tier.iter_rows(named=True)
    ]
    tier_rows = summary.filter(pl.col("breakdown") == "all people").select("tier", "people", "expected_events")
    crosstabs = [
        _crosstab(summary, breakdown, title, labeller)
        for breakdown, title, labeller in (
            ("team", "People by team and tier", lambda g: f"{teams.get(g, g)} ({g})"),
            ("age band", "People by age band and tier", str),
            ("deprivation quintile", "People by deprivation quintile (IMD) and tier", _quintile_label),
        )
    ]
    return render(
        "summary.html",
        local,
        prov=prov,
        chart=Markup(charts.bar_chart_svg(items, "People by risk tier (suppressed and rounded counts)")),
        tier_rows=list(tier_rows.iter_rows()),
        crosstabs=crosstabs,
    )


def _published_number(text: str) -> float | None:
    return None if text == "*" else float(text)


def _quintile_label(group: str) -> str:
    return {"1": "1 (most deprived)", "5": "5 (least deprived)"}.get(group, group)


def _crosstab(summary: pl.DataFrame, breakdown: str, title: str, label: Any) -> tuple[str, list, list]:
    part = summary.filter(pl.col("breakdown") == breakdown)
    tiers = list(dict.fromkeys(part["tier"].to_list()))
    cells = {(r["group"], r["tier"]): r["people"] for r in part.iter_rows(named=True)}
    groups = list(dict.fromkeys(part["group"].to_list()))
    return title, tiers, [(label(g), [cells[(g, t)] for t in tiers]) for g in groups]
