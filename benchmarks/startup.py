"""How fast an interactive command answers: `riskstrat ingest` of a batch already loaded (the command's whole
wall time, nothing to load), by the path it takes.

- plain: no Prefect server in use, the CLI runs the job in plain Python (`pipelines.jobs`): what it does now;
- temporary server: the same command as a Prefect flow on Prefect's temporary server, what every command did
  before (the CLI is told a server is in use, and Prefect then starts its temporary one);
- running server (`--with-server`): as a flow on a Prefect server already running on loopback
  (`PREFECT_API_URL` set), what a command does where an operator runs one.

Each is run `--repeats` times in a fresh process; the median and every run are printed. Run with `nice`:

    nice -n 10 .venv/bin/python -m benchmarks.startup [--repeats 3] [--with-server]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The CLI with a Prefect server said to be in use but none named: Prefect starts its temporary server, as the CLI
# did for every command before the plain path.
_AS_BEFORE = (
    "import sys, pipelines.prefect_server as p\n"
    "p.configured_api_url = lambda: 'temporary'\n"
    "sys.argv = ['riskstrat', *sys.argv[1:]]\n"
    "from pipelines.cli import app\n"
    "app()\n"
)


def _timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - started
    if done.returncode != 0 or "already loaded" not in done.stderr:
        raise RuntimeError(f"{command[:3]} failed: {done.stderr[-2000:]}")
    return seconds


def _prepare(folder: Path) -> Path:
    """A small population ingested: its weekly batch is then already loaded."""
    from data_contracts.synthetic import generate_population
    from pipelines.ingest import ingest_batch
    from pipelines.settings import load_settings

    settings = load_settings(None, {"home": str(folder / "var"), "synth": {"people": 1000, "weekly_batches": 1}})
    generated = generate_population(settings.home / "synthetic", settings.synth, settings.outcomes, settings.seed)
    for batch in sorted(generated.batch_dirs):
        ingest_batch(settings.db, batch, settings.ingest)
    return sorted(generated.batch_dirs)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--with-server", action="store_true", help="also time a flow on a running Prefect server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        batch = _prepare(folder)
        cli = ["ingest", str(batch), "--home", "var"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env |= {"PYTHONPATH": str(REPO), "PREFECT_HOME": str(folder / "prefect_home")}
        paths = {
            "plain (no server in use)": ([sys.executable, "-m", "pipelines.cli", *cli], env),
            "flow on Prefect's temporary server (before)": ([sys.executable, "-c", _AS_BEFORE, *cli], env),
        }
        results: dict[str, list[float]] = {}
        for name, (command, run_env) in paths.items():
            results[name] = [_timed(command, folder, run_env) for _ in range(args.repeats)]
        if args.with_server:
            from pipelines.prefect_server import loopback_server

            with loopback_server(folder / "server") as server_env:
                command = [sys.executable, "-m", "pipelines.cli", *cli]
                name = "flow on a running Prefect server"
                results[name] = [_timed(command, folder, {**env, **server_env}) for _ in range(args.repeats)]
    print(f"riskstrat ingest of a batch already loaded, wall time of the whole command, {args.repeats} runs")
    for name, seconds in results.items():
        runs = ", ".join(f"{s:.2f}" for s in seconds)
        print(f"  {name:<46} median {statistics.median(seconds):6.2f} s   ({runs})")


if __name__ == "__main__":
    main()
