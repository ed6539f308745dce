from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from pipelines.settings import Settings, load_settings


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
    with pytest.raises(ValueError, match=r"unknown setting.*peple"):
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


def test_weekly_and_retrain_deployments_carry_cron_and_timezone() -> None:
    from pipelines.schedule import deployments

    settings = load_settings(None, {"schedule": {"weekly_cron": "0 7 * * 2"}})
    weekly, retrain = deployments(settings)
    assert weekly.name == "riskstrat-weekly" and retrain.name == "riskstrat-retrain"
    schedule = weekly.schedules[0].schedule
    assert schedule.cron == "0 7 * * 2" and schedule.timezone == "Europe/London"
