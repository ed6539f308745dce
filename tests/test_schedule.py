"""The deployments `riskstrat serve` serves: their parameters (the settings file and an absolute home, no frozen
snapshot of the settings) and that stopping `serve` leaves their schedules on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.schedule import deployment_parameters, deployments
from pipelines.settings import load_settings

REPO = Path(__file__).resolve().parents[1]


def test_parameters_are_the_config_path_and_an_absolute_home(
    workdir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    (workdir / "riskstrat.toml").write_text('home = "data"\n\n[synth]\npeople = 1234\n')
    settings = load_settings()
    weekly, retrain, evaluate = deployments(settings)
    expected = {"config": str(workdir / "riskstrat.toml"), "overrides": {"home": str(workdir / "data")}}
    assert weekly.parameters == expected and retrain.parameters == expected and evaluate.parameters == expected
    # A run started in another folder reads the same file and writes to the same home; an edit of the file
    # reaches it (nothing of the file is frozen into the deployment).
    os.chdir(tmp_path_factory.mktemp("elsewhere"))
    (workdir / "riskstrat.toml").write_text('home = "data"\n\n[synth]\npeople = 4321\n')
    again = load_settings(Path(expected["config"]), expected["overrides"])
    assert again.home == workdir / "data" and again.synth.people == 4321


def test_without_a_settings_file_the_parameters_are_the_home_only(workdir: Path) -> None:
    settings = load_settings(None, {"home": "var"})
    assert deployment_parameters(settings) == {"config": None, "overrides": {"home": str(workdir / "var")}}


def _deployments(names: list[str]) -> dict[str, object]:
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    found = {}
    with get_client(sync_client=True) as client:
        for name in names:
            try:
                found[name] = client.read_deployment_by_name(name)
            except ObjectNotFound:
                pass
    return found


def test_stopping_serve_leaves_the_schedules_on(prefect_harness: None, tmp_path: Path) -> None:
    from prefect.settings import get_current_settings

    names = ["weekly/riskstrat-weekly", "train/riskstrat-retrain", "evaluate/riskstrat-evaluate"]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PREFECT_API_URL": str(get_current_settings().api.url),
        "PREFECT_HOME": str(tmp_path / "prefect"),
    }
    serving = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "serve", "--home", str(tmp_path / "var")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(_deployments(names)) < len(names) and serving.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        served = _deployments(names)
        assert len(served) == len(names), f"serve registered {sorted(served)} of {names} within 60 s"
        time.sleep(1)  # let the runner finish starting before it is stopped (a stop before that exits 0 too)
        serving.send_signal(signal.SIGTERM)  # what a service manager sends on stop and restart
        output, _ = serving.communicate(timeout=60)
    finally:
        if serving.poll() is None:
            serving.kill()
            serving.communicate()
    # A graceful stop (Prefect's default pauses every schedule here, on SIGTERM as on Ctrl-C).
    assert serving.returncode == 0, output[-2000:]
    for name, deployment in _deployments(names).items():
        assert not deployment.paused, f"{name} was paused when serve stopped"
        assert all(s.active for s in deployment.schedules), name
        assert deployment.parameters["overrides"] == {"home": str(tmp_path / "var")}
