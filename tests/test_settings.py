from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from pipelines.settings import Settings, SettingsError, load_settings

REPO = Path(__file__).resolve().parent.parent


def test_defaults_then_file_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "riskstrat.toml"
    config.write_text('seed = 7\n[synth]\npeople = 500\nend_date = "2025-06-30"\n[training.lgbm]\nnum_leaves = 15\n')
    settings = load_settings(config, {"synth": {"people": 900}, "home": str(tmp_path / "run")})
    assert settings.seed == 7
    assert settings.synth.people == 900  # the override beats the file
    assert settings.synth.end_date == date(2025, 6, 30)
    assert settings.training.lgbm.num_leaves == 15
    assert settings.db == tmp_path / "run" / "riskstrat.duckdb"  # derived from home


def test_unknown_setting_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"synth\.peple: unknown setting"):
        load_settings(None, {"synth": {"peple": 5}})


def test_settings_round_trip_through_json() -> None:
    settings = Settings()
    again = load_settings(None, settings.to_dict())
    assert again == settings


def test_the_readme_configuration_example_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    config = tmp_path / "riskstrat.toml"
    config.write_text(example)
    settings = load_settings(config)
    assert settings.scoring.tiers["very high"] == 0.005
    assert settings.schedule.timezone == "Europe/London"


def test_weekly_retrain_and_evaluate_deployments_carry_cron_and_timezone() -> None:
    from pipelines.schedule import deployments

    settings = load_settings(None, {"schedule": {"weekly_cron": "0 7 * * 2"}})
    weekly, retrain, evaluate = deployments(settings)
    assert weekly.name == "riskstrat-weekly" and retrain.name == "riskstrat-retrain"
    schedule = weekly.schedules[0].schedule
    assert schedule.cron == "0 7 * * 2" and schedule.timezone == "Europe/London"
    assert evaluate.name == "riskstrat-evaluate" and evaluate.schedules[0].schedule.cron == "0 7 2 * *"
    assert weekly.tags == ["riskstrat", "weekly"] and evaluate.tags == ["riskstrat", "evaluate"]


# A wrong value in a settings file: (TOML, the key the one-line error must name, words it must say).
BAD_SETTINGS = {
    "wrong type": ('[training]\nbootstrap_samples = "many"\n', "training.bootstrap_samples", "valid integer"),
    "float for an integer": ("[synth]\npeople = 1500.5\n", "synth.people", "valid integer"),
    "out of range": ("[synth]\npeople = -5\n", "synth.people", "greater than or equal to 1"),
    "fraction above 1": ("[outcomes]\nhigh_cost_top_fraction = 1.5\n", "outcomes.high_cost_top_fraction", "less than"),
    "unknown literal": ('[training]\ncalibration = "isotonick"\n', "training.calibration", "'platt'"),
    "non-monotone tiers": (
        '[scoring]\ntiers = { "very high" = 0.05, "high" = 0.005, "moderate" = 0.20, "low" = 1.0 }\n',
        "scoring.tiers",
        "increase strictly",
    ),
    "tiers not ending at 1": ('[scoring]\ntiers = { "high" = 0.05, "rest" = 0.9 }\n', "scoring.tiers", "end at 1.0"),
    "ranking outcome not trained": (
        '[training]\noutcomes = ["high_cost"]\n',
        "scoring.ranking_outcome",
        "not among training.outcomes",
    ),
    "unknown outcome": ('[training]\noutcomes = ["emergency_admission", "joy"]\n', "training.outcomes", "'joy'"),
    "time zone": ('[schedule]\ntimezone = "Europe/Londn"\n', "schedule.timezone", "IANA time zone"),
    "cron": ('[schedule]\nweekly_cron = "0 25 * * 1"\n', "schedule.weekly_cron", "cron"),
    "cron with four fields": ('[schedule]\nretrain_cron = "0 5 1 *"\n', "schedule.retrain_cron", "five fields"),
    "unknown key": ("[synth]\npeple = 5\n", "synth.peple", "unknown setting"),
    "a label that did nothing": ('[scoring]\nexplain_scale = "probability"\n', "scoring.explain_scale", "unknown"),
    "a second seed": ("[training]\nseed = 3\n", "training.seed", "top-level `seed`"),
    "no rows left to fit": (
        "[training]\nvalidation_fraction = 0.5\ncalibration_fraction = 0.5\n",
        "training.validation_fraction + training.calibration_fraction",
        "below 1",
    ),
    "seed too large for LightGBM": ("seed = 4294967296\n", "seed", "less than or equal to"),
    "not TOML": ("[synth\npeople = 5\n", "cannot be read as TOML", ""),
    "template folder missing": ('templates_dir = "/nonexistent/our_pages"\n', "templates_dir", "is not a folder"),
}


@pytest.mark.parametrize("case", BAD_SETTINGS)
def test_a_wrong_value_fails_at_load_with_one_line_naming_file_and_key(tmp_path: Path, case: str) -> None:
    text, key, words = BAD_SETTINGS[case]
    config = tmp_path / "riskstrat.toml"
    config.write_text(text)
    with pytest.raises(SettingsError) as error:
        load_settings(config)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{config}: ")
    assert key in message and words in message


def test_an_override_error_names_the_overrides_not_the_file(tmp_path: Path) -> None:
    config = tmp_path / "riskstrat.toml"
    config.write_text("[synth]\npeople = 500\n")
    with pytest.raises(SettingsError, match=r"^overrides .*synth\.dirty_rate = 2"):
        load_settings(config, {"synth": {"dirty_rate": 2}})


def test_overrides_replace_tiers_whole_and_merge_groups_key_by_key(tmp_path: Path) -> None:
    config = tmp_path / "riskstrat.toml"
    config.write_text('[scoring]\ntop_reasons = 3\ntiers = { "top" = 0.1, "rest" = 1.0 }\n')
    settings = load_settings(config, {"scoring": {"tiers": {"high": 0.05, "all": 1.0}}})
    assert settings.scoring.tiers == {"high": 0.05, "all": 1.0}
    assert settings.scoring.top_reasons == 3


def test_the_top_level_seed_seeds_the_models(tmp_path: Path) -> None:
    config = tmp_path / "riskstrat.toml"
    config.write_text("seed = 99\n")
    assert load_settings(config).training.seed == 99
    assert load_settings(config, {"seed": 7}).training.seed == 7
    assert dataclasses.replace(Settings(), seed=5).training.seed == 5
    assert "seed" not in Settings().to_dict()["training"]  # derived, so never written back as a setting


def _cli_in_subprocess(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str], float]:
    """Run the CLI as `riskstrat` runs; report which heavy libraries were imported by the time it exited."""
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('IMPORTED', *[m for m in ('prefect', 'lightgbm', 'shap') if m in sys.modules],"
        " file=sys.stderr))\n"
        f"sys.argv = ['riskstrat', *{list(args)!r}]\n"
        "from pipelines.cli import app\n"
        "app()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    seconds = time.perf_counter() - started
    lines = done.stderr.strip().splitlines()
    imported = lines.pop().split()[1:] if lines and lines[-1].startswith("IMPORTED") else ["(probe did not run)"]
    done.stderr = "\n".join(lines)
    return done, imported, seconds


@pytest.mark.parametrize("case", ["wrong type", "out of range", "unknown literal", "non-monotone tiers"])
def test_riskstrat_train_with_a_bad_value_exits_2_with_one_line_before_importing_prefect(
    tmp_path: Path, case: str
) -> None:
    text, key, words = BAD_SETTINGS[case]
    (tmp_path / "bad.toml").write_text(text)
    done, imported, _ = _cli_in_subprocess(tmp_path, "train", "--config", "bad.toml")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 0, done.stderr
    assert "bad.toml" in done.stderr and key in done.stderr and words in done.stderr
    assert imported == []  # validated before Prefect, LightGBM or SHAP load (and before any Prefect server)


def test_protected_characteristics_are_predictors_only_as_the_settings_say() -> None:
    from features.build import feature_columns
    from pipelines.training import predictor_columns

    assert {"ethnicity_group", "imd_decile"} <= set(feature_columns())
    default, _ = predictor_columns(ethnicity=False, deprivation=True)
    assert "ethnicity_group" not in default and "imd_decile" in default
    both, categorical = predictor_columns(ethnicity=True, deprivation=True)
    assert set(both) == set(feature_columns()) and "ethnicity_group" in categorical
    neither, categorical = predictor_columns(ethnicity=False, deprivation=False)
    assert set(feature_columns()) - set(neither) == {"ethnicity_group", "imd_decile"}
    assert "ethnicity_group" not in categorical
