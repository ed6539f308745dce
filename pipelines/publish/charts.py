"""Inline SVG charts for the published HTML pages, built as plain strings.

Not matplotlib: a weekly run writes a page for every listed person (5,000+), so each chart must cost
well under a millisecond and the pages must carry no external assets. Every number a chart draws is
also written as a `data-` attribute, so tests (and curious analysts) can check what was drawn.
All text goes through `html.escape`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from html import escape
from typing import Any

RAISES_COLOUR = "#C0392B"
LOWERS_COLOUR = "#2C7BB6"
INK = "#1F2933"
MUTED = "#6B7785"
GRID = "#E3E7EB"
FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif\""

# Tier colours: (background, text). Dark-on-light except the top tier, so text stays readable in print.
TIER_COLOURS: dict[str, tuple[str, str]] = {
    "very high": ("#B2182B", "#FFFFFF"),
    "high": ("#F4A582", "#3B0A0A"),
    "moderate": ("#FDE9C9", "#4A3400"),
    "low": ("#E6EEF2", "#22313F"),
}
UNKNOWN_TIER_COLOURS = ("#EEEEEE", "#333333")

SETTING_COLOURS: dict[str, str] = {
    "emergency admission": "#C0392B",
    "elective admission": "#8E44AD",
    "A&E": "#E67E22",
    "outpatient": "#2C7BB6",
    "GP": "#1A9850",
    "community": "#138D75",
    "social care": "#8D6E00",
}
OTHER_SETTING_COLOUR = "#555555"

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def tier_colours(tier: str | None) -> tuple[str, str]:
    return TIER_COLOURS.get(tier or "", UNKNOWN_TIER_COLOURS)


def fmt_num(value: float) -> str:
    """Four decimals for data attributes: enough to check sums, short enough to keep pages small."""
    return f"{value:.4f}"


def fmt_pct(p: float) -> str:
    if p < 0.1:
        return f"{p * 100:.1f}%"
    return f"{p * 100:.0f}%"


def _nice_step(span: float, target_ticks: int = 6) -> float:
    raw = span / max(target_ticks, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 2.5, 5, 10):
        if raw <= mult * magnitude:
            return mult * magnitude
    return 10 * magnitude


def _wrap(text: str, width: int, max_lines: int) -> list[str]:
    """Greedy word wrap; the last line is cut with an ellipsis (the full text stays in the <title>)."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if len(candidate) <= width or not current:
            current = candidate
            continue
        lines.append(current)
        current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: width - 1].rstrip() + "\u2026"
    return [line if len(line) <= width else line[: width - 1] + "\u2026" for line in lines] or [""]


def _text_lines(x: float, y_mid: float, lines: list[str], attrs: str, line_height: float = 15) -> str:
    first = y_mid - (len(lines) - 1) * line_height / 2
    spans = "".join(
        f'<tspan x="{x:.1f}" y="{first + i * line_height:.1f}">{escape(line)}</tspan>' for i, line in enumerate(lines)
    )
    return f'<text {attrs} dominant-baseline="middle">{spans}</text>'


@dataclass(frozen=True)
class WaterfallStep:
    label: str
    contribution: float  # percentage points of risk, as a fraction (0.031 = 3.1 points)
    detail: str = ""  # hover text, e.g. the factor and its value


@dataclass(frozen=True)
class _Bar:
    step: WaterfallStep
    start: float
    end: float


def _waterfall_bars(base: float, steps: Sequence[WaterfallStep]) -> list[_Bar]:
    bars: list[_Bar] = []
    running = base
    for step in steps:
        bars.append(_Bar(step, running, running + step.contribution))
        running += step.contribution
    return bars


def fmt_points(value: float) -> str:
    """A change in risk in percentage points, signed."""
    points = value * 100
    return f"+{points:.1f} pts" if points >= 0 else f"\u2212{abs(points):.1f} pts"


def waterfall_svg(start: float, steps: Sequence[WaterfallStep], start_label: str, final_label: str) -> str:
    """Horizontal waterfall on the risk scale: a starting risk, then each reason adding (red) or taking away
    (blue) percentage points, each bar starting where the last ended, ending at the person's risk."""
    bars = _waterfall_bars(start, steps)
    final = bars[-1].end if bars else start
    points = [start, final, *(b.end for b in bars)]
    lo, hi = min(points), max(points)
    span = max(hi - lo, 0.01)
    lo, hi = max(lo - span * 0.08, 0.0), hi + span * 0.08

    width, label_w, value_w, row_h, top, axis_h = 860, 330, 80, 36, 8, 34
    plot_x0, plot_x1 = label_w + 12, width - value_w - 8
    n_rows = len(bars) + 2
    height = top + n_rows * row_h + axis_h

    def x_of(v: float) -> float:
        return plot_x0 + (v - lo) / (hi - lo) * (plot_x1 - plot_x0)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="waterfall" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" data-base="{fmt_num(start)}" data-final="{fmt_num(final)}" data-scale="risk" '
        f'aria-label="{escape(_waterfall_summary(start, final, len(bars)))}" {FONT}>'
    ]
    parts.append(_waterfall_axis(lo, hi, x_of, top, top + n_rows * row_h))

    def row_mid(i: int) -> float:
        return top + i * row_h + row_h / 2

    parts.append(_marker_row(row_mid(0), x_of(start), start, start_label, width))
    for i, bar in enumerate(bars, start=1):
        parts.append(_bar_row(bar, row_mid(i), row_h, x_of, width))
        prev_end_x = x_of(bar.start)
        parts.append(
            f'<line x1="{prev_end_x:.1f}" x2="{prev_end_x:.1f}" y1="{row_mid(i - 1):.1f}" y2="{row_mid(i):.1f}" '
            f'stroke="{MUTED}" stroke-dasharray="3 3" stroke-width="1"/>'
        )
    last = len(bars) + 1
    parts.append(
        f'<line x1="{x_of(final):.1f}" x2="{x_of(final):.1f}" y1="{row_mid(last - 1):.1f}" y2="{row_mid(last):.1f}" '
        f'stroke="{MUTED}" stroke-dasharray="3 3" stroke-width="1"/>'
    )
    parts.append(_marker_row(row_mid(last), x_of(final), final, final_label, width, bold=True))
    parts.append("</svg>")
    return "".join(parts)


def _waterfall_summary(start: float, final: float, n: int) -> str:
    return (
        f"Waterfall chart of risk: from a starting risk of {fmt_pct(start)}, {n} steps add up to this person's "
        f"risk of {fmt_pct(final)}."
    )


def _waterfall_axis(lo: float, hi: float, x_of: Callable[[float], float], y0: float, y1: float) -> str:
    step = _nice_step(hi - lo)
    decimals = 1 if step < 0.01 else 0
    tick = math.ceil(lo / step) * step
    parts: list[str] = []
    while tick <= hi + 1e-9:
        x = x_of(tick)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y0:.1f}" y2="{y1:.1f}" stroke="{GRID}" stroke-width="1"/>'
            f'<text x="{x:.1f}" y="{y1 + 14:.1f}" font-size="11" fill="{MUTED}" text-anchor="middle">'
            f"{tick * 100:.{decimals}f}%</text>"
        )
        tick += step
    x_mid = (x_of(lo) + x_of(hi)) / 2
    parts.append(
        f'<text x="{x_mid:.1f}" y="{y1 + 29:.1f}" font-size="11" fill="{MUTED}" text-anchor="middle">'
        "risk (further right = higher risk)</text>"
    )
    return "".join(parts)


def _marker_row(y: float, x: float, value: float, label: str, width: int, bold: bool = False) -> str:
    weight = ' font-weight="700"' if bold else ""
    return (
        _text_lines(0, y, _wrap(label, 46, 2), f'font-size="13" fill="{INK}"{weight}')
        + f'<rect class="marker" x="{x - 2:.1f}" y="{y - 11:.1f}" width="4" height="22" fill="{INK}" '
        f'data-value="{fmt_num(value)}"/>'
        + f'<text x="{width - 4}" y="{y:.1f}" font-size="13" fill="{INK}" text-anchor="end" '
        f'dominant-baseline="middle"{weight}>{escape(fmt_pct(value))}</text>'
    )


def _bar_row(bar: _Bar, y: float, row_h: int, x_of: Callable[[float], float], width: int) -> str:
    colour = RAISES_COLOUR if bar.step.contribution >= 0 else LOWERS_COLOUR
    direction = "raises" if bar.step.contribution >= 0 else "lowers"
    xa, xb = x_of(bar.start), x_of(bar.end)
    left, w = min(xa, xb), max(abs(xb - xa), 1.5)  # a tiny effect still shows as a sliver
    hover = f"{bar.step.label}: {fmt_points(bar.step.contribution)}"
    if bar.step.detail:
        hover += f" ({bar.step.detail})"
    return (
        _text_lines(0, y, _wrap(bar.step.label, 46, 2), f'font-size="13" fill="{INK}"')
        + f'<rect class="bar {direction}" x="{left:.1f}" y="{y - row_h * 0.32:.1f}" width="{w:.1f}" '
        f'height="{row_h * 0.64:.1f}" rx="2" fill="{colour}" data-start="{fmt_num(bar.start)}" '
        f'data-end="{fmt_num(bar.end)}" data-contribution="{fmt_num(bar.step.contribution)}">'
        f"<title>{escape(hover)}</title></rect>"
        + f'<text x="{width - 4}" y="{y:.1f}" font-size="13" fill="{colour}" text-anchor="end" '
        f'dominant-baseline="middle" font-weight="600">{escape(fmt_points(bar.step.contribution))}</text>'
    )


@dataclass(frozen=True)
class TimelineEvent:
    when: date
    setting: str
    title: str  # hover text: date, setting, detail and cost


def _month_starts(start: date, end: date) -> list[date]:
    months: list[date] = []
    year, month = start.year, start.month
    if start.day != 1:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    while date(year, month, 1) <= end:
        months.append(date(year, month, 1))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def timeline_svg(events: Sequence[TimelineEvent], start: date, end: date, settings: Sequence[str]) -> str:
    """One row per care setting, one dot per event on a shared time axis from `start` to `end`.

    Every setting in `settings` gets a row even when empty (an empty row is information: no contact);
    settings seen in the events but not listed are added at the bottom."""
    rows = list(settings) + sorted({e.setting for e in events} - set(settings))
    counts = {s: 0 for s in rows}
    for e in events:
        counts[e.setting] += 1
    width, label_w, count_w, row_h, top, axis_h = 860, 150, 70, 26, 6, 40
    plot_x0, plot_x1 = label_w + 8, width - count_w - 8
    plot_y1 = top + len(rows) * row_h
    days = max((end - start).days, 1)

    def x_of(d: date) -> float:
        return plot_x0 + (d - start).days / days * (plot_x1 - plot_x0)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {width} {plot_y1 + axis_h}" '
        f'width="100%" role="img" data-events="{len(events)}" data-start="{start.isoformat()}" '
        f'data-end="{end.isoformat()}" aria-label="Timeline of {len(events)} contacts with services '
        f'from {start.isoformat()} to {end.isoformat()}" {FONT}>'
        # Shared look in one rule rather than on every dot: a frequent user can have hundreds of events.
        "<style>.event{fill-opacity:.75;stroke:#fff;stroke-width:1}</style>"
    ]
    for i, setting in enumerate(rows):
        y = top + i * row_h + row_h / 2
        band = "#F7F9FA" if i % 2 == 0 else "#FFFFFF"
        parts.append(
            f'<rect x="0" y="{y - row_h / 2:.1f}" width="{width}" height="{row_h}" fill="{band}" />'
            f'<text x="0" y="{y:.1f}" font-size="12.5" fill="{INK}" dominant-baseline="middle">{escape(setting)}</text>'
            f'<text x="{width - 4}" y="{y:.1f}" font-size="12" fill="{MUTED if counts[setting] == 0 else INK}" '
            f'text-anchor="end" dominant-baseline="middle">{counts[setting]}</text>'
        )
    parts.append(_timeline_grid(start, end, x_of, top, plot_y1))
    row_of = {s: i for i, s in enumerate(rows)}
    for e in sorted(events, key=lambda ev: ev.when):
        y = top + row_of[e.setting] * row_h + row_h / 2
        colour = SETTING_COLOURS.get(e.setting, OTHER_SETTING_COLOUR)
        parts.append(
            f'<circle class="event" cx="{x_of(e.when):.1f}" cy="{y:.1f}" r="5" fill="{colour}" '
            f'data-date="{e.when.isoformat()}"><title>{escape(e.title)}</title></circle>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _timeline_grid(start: date, end: date, x_of: Callable[[date], float], y0: float, y1: float) -> str:
    parts: list[str] = []
    first_label = True
    for m in _month_starts(start, end):
        x = x_of(m)
        quarter = m.month in (1, 4, 7, 10)
        stroke = "#CBD2D9" if quarter else GRID
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y0:.1f}" y2="{y1:.1f}" stroke="{stroke}"/>')
        if quarter:
            label = MONTHS[m.month - 1] + (f" {m.year}" if m.month == 1 or first_label else "")
            first_label = False
            parts.append(
                f'<text x="{x:.1f}" y="{y1 + 15:.1f}" font-size="11" fill="{MUTED}" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    x_end = x_of(end)
    parts.append(
        f'<line x1="{x_end:.1f}" x2="{x_end:.1f}" y1="{y0:.1f}" y2="{y1 + 4:.1f}" stroke="{INK}" stroke-width="1.5"/>'
        f'<text x="{x_end:.1f}" y="{y1 + 30:.1f}" font-size="11" fill="{INK}" text-anchor="end">'
        f"as of {end.day} {MONTHS[end.month - 1]} {end.year}</text>"
    )
    return "".join(parts)


@dataclass(frozen=True)
class BarItem:
    label: str
    value: float | None  # None: suppressed, drawn as no bar
    shown: str  # the text printed beside the bar (already suppressed/rounded)
    colour: str


def bar_chart_svg(items: Sequence[BarItem], title: str) -> str:
    """Small horizontal bar chart. Callers pass only published (suppressed, rounded) values, so the
    bar lengths disclose nothing the printed numbers do not."""
    width, label_w, row_h, top = 620, 120, 30, 6
    height = top + len(items) * row_h + 6
    biggest = max((i.value or 0.0 for i in items), default=0.0) or 1.0
    plot_w = width - label_w - 70
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="bars" viewBox="0 0 {width} {height}" width="100%" '
        f'style="max-width:{width}px" role="img" aria-label="{escape(title)}" {FONT}>'
    ]
    for n, item in enumerate(items):
        y = top + n * row_h + row_h / 2
        w = (item.value or 0.0) / biggest * plot_w
        parts.append(
            f'<text x="0" y="{y:.1f}" font-size="13" fill="{INK}" dominant-baseline="middle">'
            f"{escape(item.label)}</text>"
            f'<rect x="{label_w}" y="{y - 10:.1f}" width="{w:.1f}" height="20" rx="2" fill="{item.colour}" '
            f'stroke="#9AA5B1" stroke-width="0.5" data-value="{escape(item.shown)}"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y:.1f}" font-size="13" fill="{INK}" dominant-baseline="middle">'
            f"{escape(item.shown)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def figure_svg(fig: Any) -> str:
    """A matplotlib figure as inline SVG markup (the figure is closed)."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


SERIES_COLOURS = ("#2C7BB6", "#E67E22", "#1A9850", "#8E44AD", "#C0392B", "#56B4E9", "#8D6E00", "#333333")
BAND_COLOUR = "#1A9850"
LINE_COLOUR = "#C0392B"


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[date, float]]  # (date, value), in date order


def _tick_text(value: float, step: float) -> str:
    decimals = 0
    while decimals < 6 and abs(round(step, decimals) - step) > 1e-9 * max(abs(step), 1e-12):
        decimals += 1
    return f"{value:.{decimals}f}"


_LEGEND_KEYS = {  # how a legend entry's key is drawn: a line, the band's shade, the dashed threshold
    "line": 'stroke-width="2"',
    "band": 'stroke-width="8" stroke-opacity="0.25"',
    "dashed": 'stroke-width="1.5" stroke-dasharray="6 4"',
}


def _legend(items: Sequence[tuple[str, str, str]], width: int) -> list[list[tuple[str, str, str, float]]]:
    """Legend entries (label, colour, key kind) laid out in rows that fit `width`: (..., x) per entry."""
    rows: list[list[tuple[str, str, str, float]]] = [[]]
    x = 0.0
    for label, colour, kind in items:
        w = 30 + 6.6 * len(label) + 18
        if rows[-1] and x + w > width:
            rows.append([])
            x = 0.0
        rows[-1].append((label, colour, kind, x))
        x += w
    return rows


def series_svg(
    series: Sequence[Series],
    title: str,
    band: tuple[float, float] | None = None,
    band_label: str = "band",
    line: float | None = None,
    line_label: str = "alert threshold",
    span: tuple[date, date] | None = None,
    whole_numbers: bool = False,
) -> str:
    """Lines over time, one per series, on a shared date axis, with an optional shaded band (the range that is
    fine) and a dashed line (an alert threshold or the ideal). Presentation attributes only, no inline style, so
    it draws under the workspace's Content-Security-Policy; each point carries its date and value as `data-`
    attributes and a hover title. `span` sets the date axis (charts stacked on one page then line up);
    `whole_numbers` keeps the value axis's steps whole (counts)."""
    width, left, right, top = 880, 52, 14, 30
    drawn = [s for s in series if s.points]
    legend_items = [(s.label, SERIES_COLOURS[i % len(SERIES_COLOURS)], "line") for i, s in enumerate(drawn)]
    if band is not None:
        legend_items.append((band_label, BAND_COLOUR, "band"))
    if line is not None:
        legend_items.append((line_label, LINE_COLOUR, "dashed"))
    legend_rows = _legend(legend_items, width - left) if drawn else []
    plot_y1 = top + 170
    height = plot_y1 + 34 + 18 * len(legend_rows)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="series" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="{escape(title)}" data-series="{len(drawn)}" {FONT}>'
        f'<text x="0" y="16" font-size="14" font-weight="600" fill="{INK}">{escape(title)}</text>'
    ]
    if not drawn:
        parts.append(
            f'<text x="{left}" y="{top + 40}" font-size="13" fill="{MUTED}">No values yet: this appears once '
            "the weeks it needs have been monitored.</text></svg>"
        )
        return "".join(parts)
    days = [d for s in drawn for d, _ in s.points]
    values = [v for s in drawn for _, v in s.points] + list(band or ()) + ([line] if line is not None else [])
    start, end = min(days), max(days)
    if span is not None:  # widened, never cutting a point off
        start, end = min(start, span[0]), max(end, span[1])
    span_days = max((end - start).days, 1)
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5 * (abs(lo) or 1.0), hi + 0.5 * (abs(hi) or 1.0)
    step = max(_nice_step(hi - lo, 5), 1.0) if whole_numbers else _nice_step(hi - lo, 5)
    lo, hi = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    plot_x0, plot_x1 = left, width - right

    def x_of(d: date) -> float:
        if start == end:
            return (plot_x0 + plot_x1) / 2
        return plot_x0 + (d - start).days / span_days * (plot_x1 - plot_x0)

    def y_of(v: float) -> float:
        return plot_y1 - (v - lo) / (hi - lo) * (plot_y1 - top)

    ticks = round((hi - lo) / step)
    for k in range(ticks + 1):
        v = lo + k * step
        y = y_of(v)
        parts.append(
            f'<line x1="{plot_x0}" x2="{plot_x1}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
            f'<text x="{plot_x0 - 6}" y="{y:.1f}" font-size="11" fill="{MUTED}" text-anchor="end" '
            f'dominant-baseline="middle">{escape(_tick_text(v, step))}</text>'
        )
    months = _month_starts(start, end)
    # Month starts for a long series; for a short one (under three months) the dates measured.
    marks = months if len(months) >= 3 else sorted(set(days))
    every = max(1, math.ceil(len(marks) / 8))
    for n, m in enumerate(marks):
        if n % every:
            continue
        x = x_of(m)
        if marks is months:
            label = MONTHS[m.month - 1] + (f" {m.year}" if m.month == 1 or n == 0 else "")
        else:
            label = f"{m.day} {MONTHS[m.month - 1]}" + (f" {m.year}" if n == 0 else "")
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{plot_y1}" stroke="{GRID}"/>'
            f'<text x="{x:.1f}" y="{plot_y1 + 15}" font-size="11" fill="{MUTED}" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    if band is not None:
        y_hi, y_lo = y_of(max(band)), y_of(min(band))
        parts.append(
            f'<rect class="band" x="{plot_x0}" y="{y_hi:.1f}" width="{plot_x1 - plot_x0}" '
            f'height="{y_lo - y_hi:.1f}" fill="{BAND_COLOUR}" fill-opacity="0.1" data-low="{fmt_num(min(band))}" '
            f'data-high="{fmt_num(max(band))}"/>'
        )
    if line is not None:
        y = y_of(line)
        parts.append(
            f'<line class="threshold" x1="{plot_x0}" x2="{plot_x1}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{LINE_COLOUR}" stroke-width="1.2" stroke-dasharray="6 4" data-value="{fmt_num(line)}"/>'
        )
    parts.append(
        f'<line x1="{plot_x0}" x2="{plot_x1}" y1="{plot_y1}" y2="{plot_y1}" stroke="{MUTED}"/>'
        f'<line x1="{plot_x0}" x2="{plot_x0}" y1="{top}" y2="{plot_y1}" stroke="{MUTED}"/>'
    )
    for i, s in enumerate(drawn):
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        path = " ".join(f"{x_of(d):.1f},{y_of(v):.1f}" for d, v in s.points)
        parts.append(
            f'<g class="line" data-label="{escape(s.label)}" data-points="{len(s.points)}">'
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.8"/>'
        )
        parts.extend(
            f'<circle cx="{x_of(d):.1f}" cy="{y_of(v):.1f}" r="2.6" fill="{colour}" data-date="{d.isoformat()}" '
            f'data-value="{fmt_num(v)}"><title>{escape(s.label)}, {d.isoformat()}: {v:.3f}</title></circle>'
            for d, v in s.points
        )
        parts.append("</g>")
    for r, row in enumerate(legend_rows):
        y = plot_y1 + 34 + 18 * r
        for label, colour, kind, x in row:
            x += plot_x0
            parts.append(
                f'<line x1="{x:.1f}" x2="{x + 22:.1f}" y1="{y - 4}" y2="{y - 4}" stroke="{colour}" '
                f"{_LEGEND_KEYS[kind]}/>"
                f'<text x="{x + 28:.1f}" y="{y}" font-size="12" fill="{INK}">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
