"""The plain path interactive commands take without a Prefect server (pipelines.jobs): no Prefect import, so no
temporary server; nothing written to the folder the command starts in; the same reports as the flow; the same
retry policy. The startup time itself is measured by benchmarks/startup.py, never here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipelines.ingest import IngestReport
from pipelines.prefect_server import configured_api_url

REPO = Path(__file__).resolve().parents[1]
SMALL = {"synth": {"people": 300, "weekly_batches": 1, "people_per_practice": 150, "truth_replicates": 2}}


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from data_contracts.synthetic import generate_population
    from pipelines.settings import load_settings

    home = tmp_path_factory.mktemp("synth")
    settings = load_settings(None, {**SMALL, "home": str(home)})
    generate_population(home / "synthetic", settings.synth, settings.outcomes, settings.seed)
    return home / "synthetic" / "batches"


def _no_server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, "PYTHONPATH": str(REPO), "COLUMNS": "200", **extra}


def _riskstrat_probed(cwd: Path, env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], bool]:
    """Run the CLI; say whether Prefect was imported by the time it exited (no import: no server started)."""
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('PREFECT', 'prefect' in sys.modules, file=sys.stderr))\n"
        f"sys.argv = ['riskstrat', *{list(args)!r}]\n"
        "from pipelines.cli import app\n"
        "app()\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    imported = lines.pop() == "PREFECT True" if lines else True
    done.stderr = "\n".join(lines)
    return done, imported


def test_ingest_without_a_server_runs_without_prefect_and_writes_nothing_where_it_starts(
    batches: Path, tmp_path: Path
) -> None:
    start = tmp_path / "elsewhere"
    start.mkdir()
    home = tmp_path / "home"
    env = _no_server_env(HOME=str(tmp_path / "user"))  # no profiles.toml naming a server either
    first, imported = _riskstrat_probed(start, env, "ingest", str(batches), "--home", str(home))
    assert first.returncode == 0, first.stderr
    assert not imported
    assert "b0001_week" in first.stderr
    again, imported = _riskstrat_probed(start, env, "ingest", str(batches), "--home", str(home))
    assert again.returncode == 0, again.stderr
    assert not imported
    assert again.stderr.count("already loaded with the same files; nothing to do") == 2
    assert list(start.iterdir()) == []  # no var/.prefect (nor anything else) in the folder it started from
    assert not (home / ".prefect").exists()


def test_a_rejected_batch_is_one_line_and_exit_2_on_the_plain_path(batches: Path, tmp_path: Path) -> None:
    import shutil

    batch = shutil.copytree(batches / "b0001_week_2026-11-01", tmp_path / "b0001")
    (batch / "opt_outs.txt").write_text("not a table file\n")
    done, imported = _riskstrat_probed(tmp_path, _no_server_env(), "ingest", "b0001", "--home", "var")
    assert done.returncode == 2 and done.stderr.count("\n") == 0, done.stderr
    assert "opt_outs.txt" in done.stderr
    assert not imported


def test_a_prefect_server_is_in_use_when_the_environment_or_the_active_profile_names_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PREFECT_API_URL", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    assert configured_api_url() is None  # no profiles file: the temporary server
    (tmp_path / "profiles.toml").write_text(
        'active = "ops"\n[profiles.ops]\nPREFECT_API_URL = "http://127.0.0.1:4200/api"\n[profiles.local]\n'
    )
    assert configured_api_url() == "http://127.0.0.1:4200/api"
    monkeypatch.setenv("PREFECT_PROFILE", "local")
    assert configured_api_url() is None
    monkeypatch.setenv("PREFECT_API_URL", "http://10.0.0.5:4200/api")
    assert configured_api_url() == "http://10.0.0.5:4200/api"


def test_the_plain_path_retries_a_transient_failure_as_the_flow_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flaky_ingest: list[str]
) -> None:
    import pipelines.ingest
    from data_contracts.batch import BatchRejected
    from pipelines.jobs import run_plain

    calls = flaky_ingest
    overrides = {"home": str(tmp_path), "runs": {"retry_delay_seconds": 0}}
    [report] = run_plain("ingest", batch_dirs=[str(tmp_path / "b0001")], overrides=overrides)
    assert report["status"] == "loaded" and calls == ["b0001", "b0001"]

    def rejecting(db_path: Path, batch_dir: Path, settings: Any = None) -> IngestReport:
        calls.append(batch_dir.name)
        raise BatchRejected("batch folder b0002 does not exist")

    monkeypatch.setattr(pipelines.ingest, "ingest_batch", rejecting)
    with pytest.raises(BatchRejected):
        run_plain("ingest", batch_dirs=[str(tmp_path / "b0002")], overrides=overrides)
    assert calls[2:] == ["b0002"]  # a rejection is never retried
    assert "prefect" not in sys.modules or "prefect.task_engine" in sys.modules  # is_transient imported nothing


def test_the_plain_ingest_reports_what_the_flow_reports(prefect_harness: None, batches: Path, tmp_path: Path) -> None:
    from pipelines.flows import ingest
    from pipelines.jobs import run_plain

    dirs = [str(b) for b in sorted(batches.iterdir())]
    by_flow = ingest(batch_dirs=dirs, overrides={"home": str(tmp_path / "flow")})
    plain = run_plain("ingest", batch_dirs=dirs, overrides={"home": str(tmp_path / "plain")})
    assert plain == by_flow
    assert [r["status"] for r in plain] == ["loaded", "loaded"]


def test_the_demo_runs_as_prefect_flows_even_without_a_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`make demo` shows the whole job as the deployments run it: the flow path, never the plain one."""
    import types

    from typer.testing import CliRunner

    import pipelines.cli as cli
    import pipelines.jobs as jobs

    taken: list[str] = []

    def flow_for(job: str, settings: Any) -> Any:
        def run(**_: Any) -> Any:
            taken.append(f"flow {job}")
            raise SystemExit(0)  # the path is what is checked, not the demo itself

        return run

    def plain(job: str, **_: Any) -> Any:
        taken.append(f"plain {job}")
        raise SystemExit(0)

    monkeypatch.setattr(cli, "_flows", lambda: types.SimpleNamespace(flow_for=flow_for))
    monkeypatch.setattr(jobs, "run_plain", plain)
    for name in [k for k in os.environ if k.startswith("PREFECT_API_URL")]:
        monkeypatch.delenv(name)
    CliRunner().invoke(cli.app, ["demo", "--home", str(tmp_path / "var")])
    assert taken == ["flow demo"]
