"""Publishing: each team's weekly list and the commissioners' aggregate, from one scored `Publication`.

Scoring hands over one typed `Publication` (frames plus `Provenance`); `publish()` writes it. Pure frames in,
files out: no model or database code. Layout of one run (one folder per as-of date, so a re-run for the same
week replaces that week's outputs):

    <out_dir>/<as_of>/manifest.json                       every file with rows and sha256, and provenance
    <out_dir>/<as_of>/teams/<team_id>/<team_id>_list.csv  the list, provenance on every row
    <out_dir>/<as_of>/teams/<team_id>/<team_id>_list.xlsx sheets List, Reasons, Changes, About
    <out_dir>/<as_of>/teams/<team_id>/index.html          printable list page
    <out_dir>/<as_of>/teams/<team_id>/people/<person_id>.html  one page per listed person
    <out_dir>/<as_of>/commissioners/summary.csv|.html     suppressed counts only

One module per job:

    publication  the typed input (Publication, Provenance) and the columns of each frame
    checks       checking the input before anything is written
    guard        the information-governance guard (opt-outs, identifiers)
    suppression  small-number suppression
    folder       the staging folder renamed into place, and the manifest
    teams        assembling each team's rows and files (in worker processes at scale)
    excel        the team's workbook
    html         the pages, from `templates/` (Jinja2, autoescaped) with `static/` (CSS, JavaScript) inlined;
                 charts are inline SVG from `charts`
    commissioners  the commissioners' summary
    run          `publish()`: all of the above, atomically

Information governance is enforced here as the last line of defence, whatever the caller did: opted-out people are
dropped from every frame before anything is written (and counted); leavers who opted out are not mentioned, not
even counted; earlier weeks' folders lose them too (`erasure`); re-identification keys are applied to their own
team's folder only; the commissioners see counts through `suppress()` and nothing person-level. The run folder is
built in a temporary sibling folder and renamed into place, so a crash never leaves a half-written week.

Rewording and rebranding: the pages' words and markup are in `templates/*.html`, their look in
`static/riskstrat.css`. A local team does not edit the installed files: it puts its own versions, under the same
names, in a folder named by the `templates_dir` setting (templates at its top, CSS and JS in its `static/`), and
they replace the shipped ones; a local template can also extend or include a shipped one as `shipped/<name>`
(`{% extends "shipped/list.html" %}`). No Python. Reusing the pages (for another web view, say): render
with `html.render(template, **context)` (the one Jinja2 environment, `html.environment()`), or write a
template that does `{% extends "base.html" %}` (blocks `title`, `content`, `scripts`) and includes the pieces:

    _person_head.html, _person_cards.html, _person_reasons.html, _person_timeline.html   a person page's parts
    _team_stats.html, _list_table.html (with _person_cell.html), _leavers.html           a list page's parts
    _macros.html   chip(tier), risk_bar(risk), change(change, previous_rank), team_footer(prov)

Each template's first comment names the context it reads; `html.team_page()` and `html.person_page()` show
how that context is built from a `teams.TeamData` and a `Provenance`. Person links are relative
(`people/<id>.html` from the list, `../index.html` back), so a page works wherever its team folder is served.
"""

from pipelines.publish.commissioners import aggregate_summary
from pipelines.publish.publication import Provenance, Publication
from pipelines.publish.run import PublishReport, publish
from pipelines.publish.suppression import suppress

__all__ = ["Provenance", "Publication", "PublishReport", "aggregate_summary", "publish", "suppress"]
