"""A bounded load test of the MDT workspace on loopback, with a weekly run publishing in the middle of it.

    .venv/bin/python -m benchmarks.workspace_load --home /work/bench-data/workspace-100k --people 100000

1. Unless HOME already holds a published run, builds one with `riskstrat demo --people N --teams T` (generate,
   ingest, train, score, publish).
2. Adds one lead account per team (random passwords, never printed) and starts `riskstrat app` on 127.0.0.1.
3. `--users` simulated users (asyncio + httpx, one cookie jar each), spread over the teams, sign in and then
   loop: a list page (random sort and filter) or a person page of their team (random), and now and then a
   caseload decision (a form post with its CSRF token).
4. After `--weekly-at` seconds it starts `riskstrat weekly` on the same home (which exports the decisions so
   far as a caseload batch, ingests it, scores and publishes: a new run id), and keeps the load on until
   `--seconds` have passed and the weekly run has finished plus 10 s, never beyond `--max-seconds` nor
   `--max-requests` requests.

Reports requests served, latency percentiles by page, status counts (5xx must be 0), which run each response
came from (the switch to the new run is seen in the pages' footer), and the weekly run's duration. Writes
`benchmarks/results/workspace_load.json`. Loopback only; the server and the weekly run are stopped at the end.
Take figures holding the machine's heavy-work lock: `flock /tmp/riskstrat-heavy.lock python -m ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"  # loopback only, by construction
RESULTS = Path(__file__).resolve().parent / "results" / "workspace_load.json"
RUN_IN_FOOTER = re.compile(r"Run (\S+) · as of")
SORTS = ("rank", "risk", "tier", "age", "change")
FILTERS = ("", "tier=high", "tier=very+high", "new=1", "rising=1", "service=social_care")
DECISIONS = ("review_later", "declined", "other_service")


@dataclass
class Sample:
    at: float  # seconds since the load started
    kind: str
    status: int
    seconds: float
    run_id: str | None


@dataclass
class Report:
    people: int
    users: int
    requests: int
    by_status: dict[str, int]
    server_errors: int
    latency_ms: dict[str, dict[str, float]]
    runs_served: dict[str, int]
    switch_at_s: float | None
    weekly: dict[str, Any]
    load_seconds: float
    requests_per_second: float
    notes: list[str] = field(default_factory=list)


def _cli(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", *args, "--home", str(home)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def prepare(home: Path, people: int, teams: int) -> None:
    if (home / "workspace" / "current.json").exists():
        print(f"using the published run in {home}")
        return
    print(f"building a published run of {people:,} people in {home} (riskstrat demo) ...")
    subprocess.run([*_cli(home, "demo"), "--people", str(people), "--teams", str(teams)], check=True)


def load_accounts(home: Path) -> dict[str, tuple[str, str, list[str]]]:
    """One lead per team: team -> (user, password, listed person ids)."""
    from pipelines.settings import Settings
    from pipelines.workspace.accounts import add_user, get_user, set_password
    from pipelines.workspace.snapshot import SnapshotReader

    settings = Settings(home=home)
    snap = SnapshotReader(settings.workspace_dir, recheck_s=0.0).current()
    if snap is None:
        raise SystemExit(f"no published run in {home}")
    accounts = {}
    for team in sorted(snap.team_names):
        name, password = f"load_{team.lower()}", secrets.token_urlsafe(16)
        if get_user(settings.workspace_dir, name) is None:
            add_user(settings.workspace_dir, name, team, "lead", password)
        else:
            set_password(settings.workspace_dir, name, password)
        accounts[team] = (name, password, [r["person_id"] for r in snap.team_rows[team]])
    return accounts


async def _login(client: httpx.AsyncClient, name: str, password: str) -> None:
    form = (await client.get("/login")).text
    token = re.search(r'name="login_token" value="([^"]+)"', form)
    if token is None:
        raise RuntimeError("no login form")
    response = await client.post("/login", data={"username": name, "password": password, "login_token": token[1]})
    if response.status_code >= 400:
        raise RuntimeError(f"login failed for {name}: {response.status_code}")


async def user_loop(
    base: str, team: str, account: tuple[str, str, list[str]], stop: asyncio.Event, samples: list[Sample],
    started: float, seed: int, budget: list[int], decide_until: float,
) -> None:  # fmt: skip
    name, password, people = account
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=base, timeout=60, follow_redirects=True) as client:
        await _login(client, name, password)
        while not stop.is_set() and budget[0] > 0:
            budget[0] -= 1
            roll = rng.random()
            person = rng.choice(people)
            if roll < 0.45:
                kind = "list"
                query = f"sort={rng.choice(SORTS)}&order={rng.choice(('asc', 'desc'))}&{rng.choice(FILTERS)}"
                request = client.build_request("GET", f"/teams/{team}/list?{query}")
            elif roll < 0.97 or time.perf_counter() - started > decide_until:
                kind = "person"
                request = client.build_request("GET", f"/teams/{team}/people/{person}")
            else:
                kind = "decision"
                page = await client.get(f"/teams/{team}/people/{person}")
                csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
                data = {"csrf": csrf[1] if csrf else "", "decision": rng.choice(DECISIONS)}
                request = client.build_request("POST", f"/teams/{team}/people/{person}/decisions", data=data)
            t0 = time.perf_counter()
            try:
                response = await client.send(request)
                status, text = response.status_code, response.text
            except httpx.HTTPError:
                status, text = 599, ""  # no answer at all counts as a server failure
            elapsed = time.perf_counter() - t0
            served = RUN_IN_FOOTER.search(text)
            samples.append(Sample(t0 - started, kind, status, elapsed, served[1] if served else None))


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else [ordered[0]] * 99
    return {
        "n": len(ordered),
        "p50": round(q[49] * 1000, 1),
        "p95": round(q[94] * 1000, 1),
        "p99": round(q[98] * 1000, 1),
        "max": round(ordered[-1] * 1000, 1),
    }


async def run_load(args: argparse.Namespace, accounts: dict[str, tuple[str, str, list[str]]]) -> Report:
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [*_cli(args.home, "app"), "--host", HOST, "--port", str(port)], env=env, stdout=subprocess.DEVNULL
    )
    base = f"http://{HOST}:{port}"
    weekly: subprocess.Popen[bytes] | None = None
    weekly_info: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(base_url=base) as probe:
            while True:
                try:
                    if (await probe.get("/login")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the workspace did not start")
                await asyncio.sleep(0.2)
        teams = sorted(accounts)
        samples: list[Sample] = []
        stop, budget = asyncio.Event(), [args.max_requests]
        started = time.perf_counter()
        tasks = [
            asyncio.create_task(
                user_loop(
                    base,
                    teams[i % len(teams)],
                    accounts[teams[i % len(teams)]],
                    stop,
                    samples,
                    started,
                    args.seed + i,
                    budget,
                    args.weekly_at,
                )
            )
            for i in range(args.users)
        ]
        while True:
            await asyncio.sleep(0.5)
            now = time.perf_counter() - started
            if weekly is None and now >= args.weekly_at:
                weekly_info["started_at_s"] = round(now, 1)
                weekly = subprocess.Popen(_cli(args.home, "weekly"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if weekly is not None and "finished_at_s" not in weekly_info and weekly.poll() is not None:
                weekly_info |= {"finished_at_s": round(now, 1), "exit_code": weekly.returncode}
            weekly_done_for = now - weekly_info.get("finished_at_s", now + 1e9)
            if (now >= args.seconds and weekly_done_for >= 10) or now >= args.max_seconds or budget[0] <= 0:
                break
            if any(t.done() and t.exception() for t in tasks):
                break
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        load_seconds = time.perf_counter() - started
        failed = [t.exception() for t in tasks if t.exception()]
    finally:
        server.terminate()
        server.wait(timeout=30)
        if weekly is not None and weekly.poll() is None:
            weekly.terminate()
            weekly.wait(timeout=60)
    if weekly is not None and weekly.returncode not in (0, None) and weekly.stderr is not None:
        weekly_info["stderr_tail"] = weekly.stderr.read().decode(errors="replace")[-2000:]
    by_status: dict[str, int] = {}
    for s in samples:
        by_status[str(s.status)] = by_status.get(str(s.status), 0) + 1
    runs: dict[str, int] = {}
    for s in samples:
        if s.run_id:
            runs[s.run_id] = runs.get(s.run_id, 0) + 1
    first_run = next((s.run_id for s in sorted(samples, key=lambda s: s.at) if s.run_id), None)
    switch = next((s.at for s in sorted(samples, key=lambda s: s.at) if s.run_id and s.run_id != first_run), None)
    in_weekly = [
        s.seconds
        for s in samples
        if weekly_info.get("started_at_s", 1e9) <= s.at <= weekly_info.get("finished_at_s", 1e9) and s.status < 500
    ]
    latency = {kind: _percentiles([s.seconds for s in samples if s.kind == kind and s.status < 500])
               for kind in ("list", "person", "decision")}  # fmt: skip
    latency["all"] = _percentiles([s.seconds for s in samples if s.status < 500])
    latency["during_weekly_run"] = _percentiles(in_weekly)
    notes = [f"user task failed: {type(e).__name__}: {e}" for e in failed[:3]]
    return Report(
        people=args.people,
        users=args.users,
        requests=len(samples),
        by_status=dict(sorted(by_status.items())),
        server_errors=sum(n for code, n in by_status.items() if int(code) >= 500),
        latency_ms=latency,
        runs_served=runs,
        switch_at_s=round(switch, 1) if switch is not None else None,
        weekly=weekly_info,
        load_seconds=round(load_seconds, 1),
        requests_per_second=round(len(samples) / load_seconds, 1) if load_seconds else 0.0,
        notes=notes,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=Path("/work/bench-data/workspace-100k"))
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--teams", type=int, default=10)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0, help="Least load time (longer to cover the weekly).")
    parser.add_argument("--weekly-at", type=float, default=10.0, help="When the weekly run starts (seconds).")
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--max-requests", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    prepare(args.home, args.people, args.teams)
    accounts = load_accounts(args.home)
    report = asyncio.run(run_load(args, accounts))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")
    print(json.dumps(asdict(report), indent=2))


if __name__ == "__main__":
    main()
