"""The `riskstrat` command line: one verb per step of the pipeline.

Heavy libraries (Prefect, LightGBM, SHAP) are imported inside the commands that need them, after the settings
are loaded and validated, so `riskstrat --help`, light commands and a settings error answer fast.

A domain error (`data_contracts.errors.DomainError`: bad settings, a rejected batch, a missing database, an
unusable mapping) is printed as one line on stderr with exit code 2; `--debug` (or RISKSTRAT_DEBUG=1) keeps
the traceback and Prefect's own error logs. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import types
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

import pipelines  # sets Prefect's environment defaults before any flow import
from data_contracts.errors import DomainError
from pipelines.settings import Settings, load_settings
from pipelines.workspace.cli import register as register_workspace_commands

DEBUG_ENV = "RISKSTRAT_DEBUG"


def _debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


class _App(typer.Typer):
    """The CLI boundary: a domain error becomes one line on stderr and exit code 2 (unless debugging)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except DomainError as exc:
            if _debugging():
                raise
            console.print(f"[red]error:[/red] {exc}", soft_wrap=True, highlight=False, markup=True)
            sys.exit(2)


class _QuietDomainFailures(logging.Filter):
    """Drops Prefect's error records (failed task and flow runs, with their tracebacks) so that a domain error
    reaches the user once, as the one line the CLI prints; bugs still show their traceback when raised."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("prefect") and record.levelno >= logging.ERROR)


class _QuietPrefectProgress(logging.Filter):
    """Keeps Prefect's INFO lines (runs created, tasks finished) off the terminal; they still reach Prefect's
    API and UI. `--verbose` shows them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("prefect") and record.levelno < logging.WARNING)


app = _App(
    name="riskstrat",
    help="Find the people most likely to become high-cost or frequent users of health and social care.",
    no_args_is_help=True,
    add_completion=False,
)
# Wide enough for the reconciliation tables when output goes to a file or a CI log rather than a terminal.
console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="Settings file (TOML). Default: ./riskstrat.toml if present.")
]
HomeOption = Annotated[Path | None, typer.Option("--home", help="Folder for everything a run writes. Default: ./var")]
DbOption = Annotated[Path | None, typer.Option("--db", help="DuckDB database file. Default: HOME/riskstrat.duckdb")]


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
        force=True,
    )
    logging.getLogger("riskstrat").setLevel(logging.DEBUG if verbose else logging.INFO)


def _load(config: Path | None, overrides: dict[str, Any]) -> Settings:
    """Settings validated before any heavy import: a `SettingsError` (a domain error) stops the command here."""
    return load_settings(config, {k: v for k, v in overrides.items() if v not in (None, {})})


_RUN_TAGS: Any = None


def _run(job: str, settings: Settings, as_flow: bool = False, **parameters: Any) -> Any:
    """Run a job (`pipelines.jobs`) the way this command should: as its Prefect flow when a Prefect server is in
    use (named runs, artifacts and logs in its API and UI, as the deployments' runs are), the settings choose
    Prefect's Dask task runner or the command asks for the flow (`as_flow`), else in this process without Prefect,
    which would otherwise start its temporary server first (about 14 s a command)."""
    from pipelines.prefect_server import configured_api_url

    if as_flow or configured_api_url() or settings.runs.task_runner != "local":
        return _flows().flow_for(job, settings)(**parameters)
    from pipelines.jobs import run_plain

    return run_plain(job, **parameters)


def _flows() -> types.ModuleType:
    """The Prefect flows, imported only once a command's settings are valid. Importing Prefect installs its
    logging handlers; unless debugging, they then leave failures to the CLI's one line."""
    from prefect import tags

    import pipelines.flows
    from pipelines.notify import RUN_TAG

    # One command per process: every flow run it starts carries the tag the failure notification matches. The
    # context stays entered for the life of the process (kept referenced, or it would close when collected).
    global _RUN_TAGS
    if _RUN_TAGS is None:
        _RUN_TAGS = tags(RUN_TAG)
        _RUN_TAGS.__enter__()
    verbose = logging.getLogger("riskstrat").level <= logging.DEBUG
    for handler in logging.getLogger().handlers:
        if not _debugging():
            handler.addFilter(_QuietDomainFailures())
        if not verbose:
            handler.addFilter(_QuietPrefectProgress())
    return pipelines.flows


def _flow_overrides(settings: Settings) -> dict[str, Any]:
    """Settings as nested JSON for a flow's parameters (flows reload them the same way)."""
    return settings.to_dict()


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More detail in the log.")] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help=f"Show tracebacks and Prefect's error logs (or set {DEBUG_ENV}=1).")
    ] = False,
) -> None:
    if debug:
        os.environ[DEBUG_ENV] = "1"
    _setup_logging(verbose)


@app.command()
def synth(
    people: Annotated[int | None, typer.Option(help="How many people to generate.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed: the same seed gives the same files.")] = None,
    weeks: Annotated[int | None, typer.Option(help="Weekly batches after the history batch.")] = None,
    dirty: Annotated[float | None, typer.Option(help="Share of rows planted with each class of bad input.")] = None,
    file_format: Annotated[str | None, typer.Option("--format", help="parquet or csv.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder. Default: HOME/synthetic")] = None,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Generate a synthetic linked population as contract batches (plus the true outcome probabilities)."""
    from data_contracts.synthetic import generate_population

    synth_overrides = {"people": people, "weekly_batches": weeks, "dirty_rate": dirty, "file_format": file_format}
    settings = _load(
        config, {"home": home, "seed": seed, "synth": {k: v for k, v in synth_overrides.items() if v is not None}}
    )
    out_dir = out or settings.home / "synthetic"
    started = time.perf_counter()
    with _progress() as progress:
        task_id = progress.add_task("generating", total=1.0)
        result = generate_population(
            out_dir,
            settings.synth,
            settings.outcomes,
            settings.seed,
            progress=lambda stage, done: progress.update(task_id, description=stage, completed=done),
        )
    print_table_counts(
        f"Synthetic population: {settings.synth.people:,} people, seed {settings.seed}", "rows", result.row_counts
    )
    console.print(f"{len(result.batch_dirs)} batches in {out_dir / 'batches'} ({time.perf_counter() - started:.1f} s)")


def print_table_counts(title: str, heading: str, counts: dict[str, int]) -> None:
    """A two-column table of row counts by table."""
    table = RichTable(title=title)
    table.add_column("table")
    table.add_column(heading, justify="right")
    for name, n in counts.items():
        table.add_row(name, f"{n:,}")
    console.print(table)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console)


@app.command()
def ingest(
    batch_dirs: Annotated[
        list[Path], typer.Argument(help="Batch folders (or a folder of batch folders), loaded in name order.")
    ],
    db: DbOption = None,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Validate batches against the data contracts and load them into DuckDB (atomic and idempotent per batch)."""
    settings = _load(config, {"home": home, "db_path": db})
    batches = _expand_batches(batch_dirs, settings.ingest.batch_name_pattern)
    reports = _run("ingest", settings, batch_dirs=[str(b) for b in batches], overrides=_flow_overrides(settings))
    print_reconciliation(reports)


def _expand_batches(paths: list[Path], name_pattern: str) -> list[Path]:
    """The batch folders named, and those inside a folder of batches (a stray folder there is named and left out;
    a folder named directly is read as a batch whatever its name)."""
    from data_contracts.batch import batches_in, is_batch

    batches: list[Path] = []
    for path in paths:
        if not path.is_dir():
            console.print(f"[red]{path} is not a folder[/red]")
            raise typer.Exit(2)
        batches.extend([path] if is_batch(path) else batches_in(path, name_pattern))
    return batches


def print_reconciliation(reports: list[dict]) -> None:
    table = RichTable(title="Ingest reconciliation (read = loaded + quarantined + excluded)")
    for col in ("batch", "table", "read", "loaded", "quarantined", "excluded", "removed"):
        table.add_column(col, justify="left" if col in ("batch", "table") else "right")
    for report in reports:
        for t in report["tables"]:
            table.add_row(
                report["batch_id"] + ("" if report["status"] == "loaded" else f" ({report['status']})"),
                t["table"],
                *(
                    f"{t[k]:,}"
                    for k in ("rows_read", "rows_loaded", "rows_quarantined", "rows_excluded", "rows_removed")
                ),
            )
    console.print(table)
    for report in reports:
        if report["status"] == "waiting":
            console.print(f"[yellow]batch folder {report['batch_id']} waits[/yellow]: {report['reason']}")


batch_app = typer.Typer(help="Batches in the warehouse: take one out again.", no_args_is_help=True)
app.add_typer(batch_app, name="batch")


@batch_app.command("unload")
def batch_unload(
    batch_id: Annotated[str, typer.Argument(help="The id of a loaded batch (as the ingest reconciliation names it).")],
    db: DbOption = None,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Remove everything one batch loaded, atomically, as if it had never been loaded, and record the unload in
    the warehouse (`batch_unloads`); the same batch folder can then be ingested again. Refused, with the reason,
    where that cannot be done honestly (the batch delivered opt-outs, replaced earlier rows, or later batches
    hold rows of the people it delivered)."""
    from pipelines.ingest import unload_batch

    settings = _load(config, {"home": home, "db_path": db})
    report = unload_batch(settings.db, batch_id)
    print_table_counts(f"Batch {report.batch_id} unloaded from {settings.db}", "rows removed", report.rows_removed)
    console.print("recorded in batch_unloads; the batch can be ingested again (riskstrat ingest its folder)")


@app.command("import")
def import_(
    source_dir: Annotated[Path, typer.Argument(help="Folder of source files (CSV or Parquet) the mapping names.")],
    mapping: Annotated[
        str,
        typer.Option(
            help="Mapping file (TOML), or a shipped mapping: cld (Adult Social Care Client Level Data), "
            "synthea_native, synthea_flat, omop (OMOP CDM v5.3/v5.4, CSV or Parquet)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Batch folder to write (must not exist or be empty).")],
    batch_id: Annotated[str | None, typer.Option(help="Batch id. Default: the --out folder's name.")] = None,
    extract_date: Annotated[
        str | None,
        typer.Option(
            help="The date the source was extracted (YYYY-MM-DD), as its supplier states it. Required: it is "
            "never taken from the data."
        ),
    ] = None,
) -> None:
    """Convert a source's own files into a contract batch with a declarative mapping; then `riskstrat ingest` it.

    Every source row is accounted for: taken by a table or not, then written or dropped with the mapping's stated
    reason (counts in the batch's batch.json), then loaded, quarantined or excluded by the ingest."""
    from datetime import date

    from data_contracts.importer import import_source
    from data_contracts.mapping import MappingError

    try:
        when = date.fromisoformat(extract_date) if extract_date else None
    except ValueError:
        console.print(f"[red]import error:[/red] --extract-date {extract_date!r} is not a date (YYYY-MM-DD)")
        raise typer.Exit(2) from None
    try:
        report = import_source(mapping, source_dir, out, batch_id, when)
    except (MappingError, FileNotFoundError, FileExistsError, ValueError) as exc:
        console.print(f"[red]import error:[/red] {exc}")
        raise typer.Exit(2) from exc
    table = RichTable(title=f"Import reconciliation, mapping {report.mapping} (rows in = written + dropped, by reason)")
    for col in ("source file", "table", "rows in", "written", "dropped", "reason"):
        table.add_column(col, justify="right" if col in ("rows in", "written", "dropped") else "left")
    for f in report.files:
        table.add_row(f.file, "(file)", f"{f.rows_read:,}", "", "", "rows read")
        for rule in f.rules:
            table.add_row(
                f.file, rule.table, f"{rule.rows:,}", "", "", f"taken by rule {rule.rule!r} (line {rule.line})"
            )
        for reason, n in f.not_taken.items():
            table.add_row(f.file, "(none)", "", "", f"{n:,}", reason)
    for t in report.tables:
        table.add_row(t.file or "(mapping rows)", t.table, f"{t.rows_in:,}", f"{t.rows_written:,}", "", "")
        for reason, n in t.dropped.items():
            table.add_row("", "", "", "", f"{n:,}", reason)
    for name, reason in report.unused_files.items():
        table.add_row(name, "(unused)", "", "", "", reason)
    console.print(table)
    if report.warnings:
        console.print(f"[yellow]{len(report.warnings)} warning(s)[/yellow] (above, and in batch.json for the ingest)")
    console.print(
        f"batch {report.batch_id} written to {report.batch_dir} (extract date {report.extract_date}, costs in "
        f"{report.currency}); next: riskstrat ingest {report.batch_dir}"
    )


@app.command()
def dictionary(
    out: Annotated[Path | None, typer.Option(help="Where to write it. Default: docs/data_dictionary.md")] = None,
) -> None:
    """Write the data dictionary generated from the contract declarations."""
    from data_contracts.dictionary import DICTIONARY_PATH, write_data_dictionary

    console.print(f"wrote {write_data_dictionary(out or DICTIONARY_PATH)}")


@app.command()
def train(
    truth: Annotated[
        Path | None, typer.Option(help="The generator's truth.parquet, to compare with the oracle (synthetic data).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Promote the new models even if worse than the current ones.")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Train a model for every outcome, compare it with the baselines, register it and promote it if not worse."""
    from data_contracts.synthetic.truth import check_truth

    settings = _load(config, {"home": home, "db_path": db})
    truth = truth or _default_truth(settings)
    if truth is not None and truth.exists():
        check_truth(truth, settings.outcomes)  # before Prefect starts; the flow checks again (deployments)
    summary = _run(
        "train", settings, overrides=_flow_overrides(settings), truth_path=str(truth) if truth else None, force=force
    )
    print_training_summary(summary, settings)


def _default_truth(settings: Settings) -> Path | None:
    candidate = settings.home / "synthetic" / "truth.parquet"
    return candidate if candidate.exists() else None


def print_training_summary(summary: dict[str, Any], settings: Settings) -> None:
    import polars as pl

    from models.evaluation import print_comparison

    console.print(
        f"evaluated at {summary['eval_index_date']}, fitted at {', '.join(summary['fit_index_dates'])} "
        f"({summary['rows']:,} person-periods)"
    )
    print_comparison(pl.DataFrame(summary["comparison"]), console=console)
    for outcome, decision in summary["decisions"].items():
        verdict = "promoted" if decision["promoted"] else "not promoted"
        console.print(f"{outcome} {decision['version']}: {verdict} ({decision['reason']})")
    console.print(f"model cards: {settings.registry}/<outcome>/<version>/model_card.html")


@app.command()
def score(
    as_of: Annotated[
        str | None, typer.Option(help="Score as of this date (YYYY-MM-DD). Default: the latest data.")
    ] = None,
    reidentify: Annotated[
        list[str] | None,
        typer.Option(
            help="TEAM_ID=lookup.csv: a team's own lookup (person_id, nhs_number, name), applied to that team's "
            "list only. Repeat for several teams."
        ),
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Score everyone eligible, stratify into tiers and publish each team's ranked, explained list."""
    settings = _load(config, {"home": home, "db_path": db})
    lookups = {}
    for item in reidentify or []:
        team, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            console.print(f"[red]--reidentify wants TEAM_ID=FILE with an existing file, got {item!r}[/red]")
            raise typer.Exit(2)
        lookups[team] = path
    summary = _run(
        "score", settings, overrides=_flow_overrides(settings), as_of=as_of, reidentification=lookups or None
    )
    print_score_summary(summary)


def print_score_summary(summary: dict[str, Any]) -> None:
    table = RichTable(title=f"Run {summary['run_id']} as of {summary['as_of']}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in summary["counts"].items():
        table.add_row(key.replace("_", " "), f"{value:,}")
    console.print(table)
    console.print(f"team lists and commissioners' summary: {summary['published']['folder']}")


@app.command()
def weekly(config: ConfigOption = None, home: HomeOption = None) -> None:
    """The weekly refresh: ingest new batches from HOME/batches, then score and publish."""
    settings = _load(config, {"home": home})
    summary = _run("weekly", settings, config=str(config) if config else None, overrides=_flow_overrides(settings))
    print_reconciliation(summary["ingest"])
    gates = summary["gates"]
    console.print(
        f"data-quality gates: {gates['status']} ({gates['counts']['warn']} warned, {gates['counts']['error']} failed)"
    )
    print_score_summary(summary["score"])
    monitored = summary["monitoring"]
    for alert in monitored["alerts"]:
        console.print(f"[yellow]monitoring alert:[/yellow] {alert}")
    refit = "requested" if monitored["refit_requested"] else "not requested"
    console.print(f"monitoring: {len(monitored['alerts'])} alert(s), refit {refit}; report {monitored['report']}")


@app.command()
def monitor(
    out: Annotated[
        Path | None, typer.Option(help="Where to write the report. Default: HOME/outputs/monitoring/index.html")
    ] = None,
    open_report: Annotated[bool, typer.Option("--open", help="Open the report in the default browser.")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Write the monitoring report (drift, expected and realised performance and data-quality checks over time,
    alerts) from what the weekly runs stored, and print where it is; the MDT workspace's monitoring page is
    refreshed from the same history."""
    settings = _load(config, {"home": home, "db_path": db})
    from pipelines.monitor import default_report_path, publish_monitoring

    path = publish_monitoring(settings, out or default_report_path(settings)).resolve()
    console.print(f"monitoring report: {path}")
    if open_report:
        import webbrowser

        webbrowser.open(path.as_uri())


@app.command()
def notify(
    webhook: Annotated[str, typer.Option(help="The URL to POST to when a riskstrat flow run fails (kept secret).")],
    header: Annotated[
        list[str] | None, typer.Option(help="NAME=VALUE, a header to send (e.g. an authorisation). Repeatable.")
    ] = None,
    allow_private_urls: Annotated[
        bool, typer.Option(help="Allow a webhook on a private or loopback address (an internal relay).")
    ] = False,
) -> None:
    """Notify a webhook whenever a riskstrat flow run fails, crashes or times out: saves a Webhook block and a
    Prefect automation on the server PREFECT_API_URL names (run again to change the URL)."""
    pipelines.make_prefect_home()
    from pipelines.notify import AUTOMATION_NAME, BLOCK_NAME, install_failure_notification

    if not os.environ.get("PREFECT_API_URL"):
        console.print(
            "[red]error:[/red] PREFECT_API_URL is not set: automations live on a Prefect server "
            "(`prefect server start`, then PREFECT_API_URL=http://127.0.0.1:4200/api)"
        )
        raise typer.Exit(2)
    headers = {}
    for item in header or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            console.print(f"[red]--header wants NAME=VALUE, got {name!r}[/red]")
            raise typer.Exit(2)
        headers[name] = value
    import httpx

    try:
        block_id, automation_id = install_failure_notification(webhook, headers, allow_private_urls)
    except httpx.HTTPError as exc:
        console.print(
            f"[red]error:[/red] the Prefect server at {os.environ['PREFECT_API_URL']} cannot be reached ({exc})"
        )
        raise typer.Exit(2) from None
    console.print(
        f"automation {AUTOMATION_NAME!r} ({automation_id}) posts to the webhook saved as block {BLOCK_NAME!r} "
        f"({block_id}) when a flow run tagged 'riskstrat' fails, crashes or times out"
    )


@app.command()
def serve(config: ConfigOption = None, home: HomeOption = None) -> None:
    """Serve the weekly refresh and the retraining as Prefect deployments on their cron schedules.

    Schedules fire only with a real Prefect server: start one with `prefect server start` and set
    PREFECT_API_URL=http://127.0.0.1:4200/api before running this (see the README)."""
    import os

    settings = _load(config, {"home": home})
    from pipelines.warehouse import SCHEDULED_WAIT_SECONDS, WAIT_ENV

    # A scheduled run queues behind a long manual one instead of failing at once.
    os.environ.setdefault(WAIT_ENV, str(SCHEDULED_WAIT_SECONDS))

    from pipelines.schedule import serve as serve_deployments

    if not os.environ.get("PREFECT_API_URL"):
        console.print(
            "[yellow]PREFECT_API_URL is not set: with Prefect's temporary server the schedules never fire. "
            "Start `prefect server start` and set PREFECT_API_URL=http://127.0.0.1:4200/api.[/yellow]"
        )
    serve_deployments(settings, config)


@app.command()
def demo(
    people: Annotated[int | None, typer.Option(help="How many people to generate.")] = None,
    teams: Annotated[int, typer.Option(help="How many MDT teams the population is split into.")] = 4,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Run the whole job end to end on a generated synthetic population: generate, ingest, train, score, publish;
    then create the MDT workspace's demo accounts and say how to start it."""
    from pipelines.workspace.demo import demo_synth_overrides

    base = _load(config, {"home": home, "synth": {"people": people} if people else {}})
    layout = demo_synth_overrides(base.synth.people, teams)
    settings = _load(config, {"home": home, "synth": {"people": base.synth.people, **layout}})
    started = time.perf_counter()
    console.print(f"riskstrat demo: {settings.synth.people:,} synthetic people, seed {settings.seed}")
    # The whole job as the deployments run it: Prefect's flows and tasks, on its temporary server when none is
    # in use (started and stopped by Prefect; nothing to start by hand). Its start-up is small beside the demo.
    summary = _run("demo", settings, as_flow=True, overrides=_flow_overrides(settings))
    print_reconciliation(summary["ingest"])
    print_training_summary(summary["train"], settings)
    print_score_summary(summary["score"])
    console.print(f"database: {settings.db}")
    console.print(f"demo finished in {time.perf_counter() - started:.0f} s")
    print_workspace_demo(settings)


def print_workspace_demo(settings: Settings) -> None:
    from pipelines.workspace.demo import create_demo_accounts

    accounts = create_demo_accounts(settings)
    console.print("\n[bold]MDT workspace[/bold]: start it with")
    console.print(f"  .venv/bin/riskstrat app --home {settings.home} --host 127.0.0.1 --port {settings.workspace.port}")
    console.print(f"and open http://127.0.0.1:{settings.workspace.port}/ . Demo accounts:")
    console.print(
        "[yellow]DEMO ONLY: passwords are printed because this is a synthetic demo; never print real ones.[/yellow]"
    )
    table = RichTable("user", "team", "role", "password (demo only)")
    for a in accounts:
        table.add_row(a.name, a.team_id or "all teams", a.role, a.password)
    console.print(table)


evaluate_app = typer.Typer(
    help="Did case management work? The plan (declared and frozen first) and the evaluation against it.",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(evaluate_app, name="evaluate")
PlanOption = Annotated[
    Path | None,
    typer.Option(
        "--plan", help="Evaluation plan (TOML). Default: ./evaluation.toml if present, else the shipped plan."
    ),
]


@evaluate_app.callback()
def evaluate(
    ctx: typer.Context,
    plan: PlanOption = None,
    draws: Annotated[
        Path | None,
        typer.Option(
            help="Draws at the margin recorded outside the warehouse (Parquet: person_id, team_id, "
            "draw_date, list_rank, offered), e.g. HOME/synthetic/list_draws.parquet."
        ),
    ] = None,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Evaluate the case-management service against its frozen plan: HTML report with plots, JSON and CSV."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _load(config, {"home": home})
    summary = _run(
        "evaluate",
        settings,
        overrides=_flow_overrides(settings),
        plan=str(plan) if plan else None,
        draws=str(draws) if draws else None,
    )
    table = RichTable(title=f"Plan {summary['plan_id']} ({summary['plan_hash'][:12]}), data to {summary['data_end']}")
    for column in ("method", "outcome", "estimate", "95% interval", "people"):
        table.add_column(column, justify="right" if column in ("estimate", "people") else "left")
    for row in summary["estimates"]:
        table.add_row(
            row["method"],
            row["outcome"],
            f"{row['estimate']:+.1%}",
            f"{row['lo']:+.1%} to {row['hi']:+.1%}",
            str(row["people"]),
        )
    console.print(table)
    for row in summary["estimates"]:
        if "power" in row and row["power"] < summary["plan_power"]:
            console.print(
                f"[yellow]{row['method']}: {row['power']:.0%} power for the plan's minimum effect with "
                f"{row['people']:,} people offered (about {row['people_offered_needed']:,.0f} needed): "
                "read its interval, not its point estimate[/yellow]"
            )
    console.print(
        f"taken on {summary['taken_on']}, with a whole follow-up {summary['evaluable']}, matched {summary['matched']}"
    )
    console.print(f"report: {summary['folder']}/index.html")


@evaluate_app.command("plan")
def evaluate_plan(
    plan: PlanOption = None,
    freeze: Annotated[bool, typer.Option("--freeze", help="Record the plan's hash and date in the warehouse.")] = False,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Check the evaluation plan, compute the power the population gives, and (--freeze) freeze it."""
    from pipelines.evaluate import check_plan, freeze_plan

    settings = _load(config, {"home": home})
    check = check_plan(settings, plan)
    console.print(f"plan {check.plan.id!r} ({check.path}): valid, hash {check.hash}")
    if check.power:
        p = check.power
        console.print(
            f"power: emergency admissions {p['rate_per_year']:.2f} a year among the {p['listed_people']:.0f} people "
            f"the lists would hold (dispersion {p['dispersion']:.2f}); {p['people_needed']:.0f} people taken on "
            f"detect a {check.plan.power.minimum_effect:.0%} reduction with power {check.plan.power.power:.0%}; "
            f"{p['people_taken_on']:.0f} taken on so far give power {p['power_now']:.0%}"
        )
    if freeze:
        frozen = freeze_plan(settings, plan)
        console.print(
            f"frozen: plan {frozen.plan_id!r}, hash {frozen.plan_hash[:12]}, {frozen.frozen_at:%Y-%m-%d %H:%M}"
        )
    elif check.frozen is not None:
        state = "CHANGED since it was frozen" if check.changed_since_frozen else "unchanged since it was frozen"
        console.print(f"{state} on {check.frozen.frozen_at:%Y-%m-%d} (hash {check.frozen.plan_hash[:12]})")
    else:
        console.print("not frozen yet: `riskstrat evaluate plan --freeze` before the results are seen")


register_workspace_commands(app, _load, console)

if __name__ == "__main__":
    app()
