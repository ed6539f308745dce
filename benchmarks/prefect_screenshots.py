"""Screenshots of a weekly run in the Prefect UI (its logs, named task runs, the ingest's per-batch tasks and the
weekly summary artifact), in Debian's headless Chromium.

    .venv/bin/python -m benchmarks.prefect_screenshots --out docs/screenshots [--people 3000]

Everything happens in a temporary folder: a Prefect server with its UI on a free loopback port, a small synthetic
population (a few dirty rows, so the quarantine has reasons), the history and the first week ingested and the
models trained, then `riskstrat weekly` against the server, which loads the second week and skips the two
already loaded. The server is stopped at the end. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pipelines.prefect_server import loopback_server

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
REPO = Path(__file__).resolve().parents[1]


def _riskstrat(env: dict[str, str], cwd: Path, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=cwd, env=env, text=True)
    if done.returncode != 0:
        raise SystemExit(f"riskstrat {' '.join(args)} failed ({done.returncode})")


def prepare(work: Path, env: dict[str, str], people: int) -> Path:
    """A home with the history and week 1 loaded and the models trained; week 2 waiting in its batches folder."""
    home = work / "var"
    overrides = ["--home", str(home)]
    (work / "riskstrat.toml").write_text(
        f'home = "{home}"\n\n[synth]\npeople = {people}\nweekly_batches = 2\ndirty_rate = 0.002\n'
        "people_per_practice = 1000\ntruth_replicates = 4\n\n"
        '[training]\noutcomes = ["emergency_admission", "high_cost"]\nbootstrap_samples = 20\n'
        'explain_sample_rows = 200\nnum_boost_round = 80\n\n[quality]\non_error = "flag"\n'
    )
    _riskstrat(env, work, "synth", *overrides)
    generated = sorted(p for p in (home / "synthetic" / "batches").iterdir() if p.is_dir())
    _riskstrat(env, work, "ingest", *(str(p) for p in generated[:2]), *overrides)
    _riskstrat(env, work, "train", *overrides)
    (home / "batches").mkdir(exist_ok=True)
    for batch in generated:
        shutil.copytree(batch, home / "batches" / batch.name)
    return home


def _latest_weekly() -> Any:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["weekly"])), sort=FlowRunSort.START_TIME_DESC, limit=1
        )
        [run] = runs
        ingest = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["ingest"])), sort=FlowRunSort.START_TIME_DESC, limit=1
        )[0]
        artifacts = client.read_artifacts()
    summary = next(a for a in artifacts if a.key == "weekly-summary" and a.flow_run_id == run.id)
    return run, ingest, summary


def screenshots(base: str, run: Any, ingest: Any, summary: Any, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1440, "height": 1500})

        def shot(name: str) -> None:
            page.wait_for_timeout(1500)  # let the last requests render
            path = out / f"prefect_{name}.png"
            page.screenshot(path=str(path), full_page=False)
            shots.append(path)

        page.goto(f"{base}/runs/flow-run/{run.id}")
        page.get_by_text("scored people_scored").first.wait_for(timeout=60_000)
        shot("weekly_logs")
        page.get_by_text("Task Runs", exact=True).first.click()
        page.get_by_text("monitor ").first.wait_for(timeout=30_000)
        shot("weekly_tasks")
        page.goto(f"{base}/runs/flow-run/{ingest.id}")
        page.get_by_text("Task Runs", exact=True).first.click()
        page.get_by_text("ingest b0002").first.wait_for(timeout=30_000)
        shot("ingest_tasks")
        page.goto(f"{base}/artifacts/artifact/{summary.id}")
        page.get_by_text("Quarantine reasons").first.wait_for(timeout=30_000)
        shot("weekly_summary")
        page.get_by_role("heading", name="Data-quality gates").evaluate("e => e.scrollIntoView({block: 'start'})")
        shot("weekly_summary_scoring")
        browser.close()
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--people", type=int, default=3000)
    parser.add_argument(
        "--work", type=Path, help="Keep the server's state and the home here (reused when it holds a run)."
    )
    args = parser.parse_args()
    out = args.out.resolve()
    with tempfile.TemporaryDirectory(prefix="riskstrat-prefect-ui-") as tmp:
        work = (args.work or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        reuse = (work / "var" / "outputs").exists()
        with loopback_server(work / "prefect", ui=True, start_seconds=120) as server_env:
            env = {**server_env, "PYTHONPATH": str(REPO)}
            os.environ.update({k: v for k, v in env.items() if k.startswith("PREFECT_") or k == "DO_NOT_TRACK"})
            if not reuse:
                prepare(work, env, args.people)
                _riskstrat(env, work, "weekly")
            base = env["PREFECT_API_URL"].removesuffix("/api")
            run, ingest, summary = _latest_weekly()
            for path in screenshots(base, run, ingest, summary, out):
                print(f"wrote {path}")


if __name__ == "__main__":
    main()
