"""The workspace's commands: `riskstrat app`, `riskstrat users add|list|disable`, `riskstrat audit verify|export`.

Registered on the main CLI by `register` (which hands over its settings loader and console, so settings errors
read the same everywhere)."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table as RichTable

from pipelines.settings import Settings

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="Settings file (TOML). Default: ./riskstrat.toml if present.")
]
HomeOption = Annotated[Path | None, typer.Option("--home", help="Folder for everything a run writes. Default: ./var")]


def register(app: typer.Typer, load: Callable[[Path | None, dict[str, Any]], Settings], console: Console) -> None:
    def fail(message: str, code: int = 2) -> typer.Exit:
        console.print(f"[red]error:[/red] {message}")
        return typer.Exit(code)

    users = typer.Typer(help="Accounts of the MDT workspace.", no_args_is_help=True)
    audit_app = typer.Typer(help="The workspace's audit trail.", no_args_is_help=True)
    app.add_typer(users, name="users")
    app.add_typer(audit_app, name="audit")

    @app.command("app")
    def serve_app(
        config: ConfigOption = None,
        home: HomeOption = None,
        host: Annotated[str | None, typer.Option(help="Address to listen on. Default: 127.0.0.1")] = None,
        port: Annotated[int | None, typer.Option(help="Port. Default: 8765")] = None,
    ) -> None:
        """Serve the MDT workspace (team lists, person pages, caseload decisions, audited)."""
        import uvicorn

        from pipelines.workspace.app import create_app

        listen = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
        settings = load(config, {"home": home, "workspace": listen})
        conf = settings.workspace
        console.print(f"MDT workspace on http://{conf.host}:{conf.port}/ (state in {settings.workspace_dir})")
        uvicorn.run(create_app(settings), host=conf.host, port=conf.port, log_level="warning", access_log=False)

    @users.command("add")
    def users_add(
        name: Annotated[str, typer.Argument(help="User name.")],
        role: Annotated[str, typer.Option(help="clinician, lead, analyst or admin.")],
        team: Annotated[str | None, typer.Option(help="Team id (required for clinicians and leads).")] = None,
        password_file: Annotated[
            Path | None, typer.Option(help="Read the password from this file (first line) instead of a prompt.")
        ] = None,
        config: ConfigOption = None,
        home: HomeOption = None,
    ) -> None:
        """Add an account; the password is read from a prompt (or --password-file) and stored as an argon2 hash."""
        from pipelines.workspace.accounts import AccountError, add_user

        settings = load(config, {"home": home})
        if password_file is not None:
            try:
                password = password_file.read_text(encoding="utf-8").splitlines()[0]
            except (OSError, IndexError) as exc:
                raise fail(f"cannot read a password from {password_file}") from exc
        elif sys.stdin.isatty():
            password = getpass.getpass("Password: ")
            if getpass.getpass("Repeat the password: ") != password:
                raise fail("the passwords differ")
        else:
            password = sys.stdin.readline().rstrip("\n")
        try:
            user = add_user(settings.workspace_dir, name, team, role, password)
        except AccountError as exc:
            raise fail(str(exc)) from exc
        console.print(f"added {user.name} ({user.role.value}, {user.team_id or 'all teams'})")

    @users.command("list")
    def users_list(config: ConfigOption = None, home: HomeOption = None) -> None:
        """List the accounts (name, team, role, status)."""
        from pipelines.workspace.accounts import list_users

        settings = load(config, {"home": home})
        table = RichTable("user", "team", "role", "status")
        for u in list_users(settings.workspace_dir):
            table.add_row(u.name, u.team_id or "all teams", u.role.value, "disabled" if u.disabled else "active")
        Console().print(table)

    @users.command("disable")
    def users_disable(
        name: Annotated[str, typer.Argument(help="User name.")], config: ConfigOption = None, home: HomeOption = None
    ) -> None:
        """Disable an account; its sessions end at once."""
        from pipelines.workspace.accounts import AccountError, disable_user

        settings = load(config, {"home": home})
        try:
            disable_user(settings.workspace_dir, name)
        except AccountError as exc:
            raise fail(str(exc)) from exc
        console.print(f"disabled {name}")

    @audit_app.command("verify")
    def audit_verify(config: ConfigOption = None, home: HomeOption = None) -> None:
        """Check the audit trail's hash chain; exit 1 naming the first broken record."""
        from pipelines.workspace.audit import verify

        settings = load(config, {"home": home})
        result = verify(settings.workspace_dir)
        if not result.ok:
            raise fail(f"audit trail broken: {result.problem} ({result.records} records)", code=1)
        console.print(f"audit trail intact: {result.records} records")

    @audit_app.command("export")
    def audit_export(
        from_: Annotated[str | None, typer.Option("--from", help="First day (YYYY-MM-DD, UTC).")] = None,
        to: Annotated[str | None, typer.Option("--to", help="Last day (YYYY-MM-DD, UTC).")] = None,
        out: Annotated[Path | None, typer.Option(help="CSV file to write. Default: standard output.")] = None,
        config: ConfigOption = None,
        home: HomeOption = None,
    ) -> None:
        """Write the audit records between two dates as CSV, with their hashes, for the information-governance lead."""
        from pipelines.workspace.audit import export_csv, records

        settings = load(config, {"home": home})
        try:
            start, end = (date.fromisoformat(from_) if from_ else None), (date.fromisoformat(to) if to else None)
        except ValueError as exc:
            raise fail(f"--from and --to take dates as YYYY-MM-DD ({exc})") from exc
        rows = records(settings.workspace_dir, start, end)
        text = export_csv(rows)
        if out is None:
            sys.stdout.write(text)
        else:
            out.write_text(text, encoding="utf-8")
            console.print(f"wrote {len(rows)} audit records to {out}")
