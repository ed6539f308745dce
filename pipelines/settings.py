"""One typed settings object for a riskstrat run.

Defaults suit the embedded demo. A `riskstrat.toml` (in the working directory, or named with
`--config`) overrides any of them; CLI flags and flow parameters override the file. Each layer owns
its part (`SynthSettings`, `OutcomeSettings`, `TrainingSettings`, ...); this module only composes.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from data_contracts.settings import IngestSettings, SynthSettings
from features.settings import OutcomeSettings
from models.settings import ScoringSettings, TrainingSettings

DEFAULT_CONFIG_FILE = Path("riskstrat.toml")


@dataclass
class ScheduleSettings:
    weekly_cron: str = "0 6 * * 1"
    retrain_cron: str = "0 5 1 */3 *"
    timezone: str = "Europe/London"


@dataclass
class Settings:
    # Everything a run writes lives under `home` unless a path is given explicitly.
    home: Path = Path("var")
    db_path: Path | None = None
    batches_dir: Path | None = None
    registry_dir: Path | None = None
    outputs_dir: Path | None = None
    seed: int = 20261124
    synth: SynthSettings = field(default_factory=SynthSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    outcomes: OutcomeSettings = field(default_factory=OutcomeSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    scoring: ScoringSettings = field(default_factory=ScoringSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)

    # Resolved paths: an explicit setting wins, otherwise a folder under `home`.
    @property
    def db(self) -> Path:
        return Path(self.db_path) if self.db_path else Path(self.home) / "riskstrat.duckdb"

    @property
    def batches(self) -> Path:
        return Path(self.batches_dir) if self.batches_dir else Path(self.home) / "batches"

    @property
    def registry(self) -> Path:
        return Path(self.registry_dir) if self.registry_dir else Path(self.home) / "registry"

    @property
    def outputs(self) -> Path:
        return Path(self.outputs_dir) if self.outputs_dir else Path(self.home) / "outputs"

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (Path, date)):
        return str(value)
    return value


def _coerce(tp: Any, value: Any) -> Any:
    """Turn a TOML/JSON value into the declared field type (dates, paths, tuples, nested dataclasses)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _coerce(args[0], value)
    if dataclasses.is_dataclass(tp):
        return _merge(tp(), value)
    if tp is date and isinstance(value, str):
        return date.fromisoformat(value)
    if tp is Path:
        return Path(value)
    if origin is tuple:
        return tuple(value)
    if tp is float and isinstance(value, int):
        return float(value)
    return value


def _merge(instance: Any, overrides: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(type(instance))
    known = {f.name for f in dataclasses.fields(instance)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown setting(s) for {type(instance).__name__}: {', '.join(sorted(unknown))}")
    changes = {}
    for name, value in overrides.items():
        current = getattr(instance, name)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            changes[name] = _merge(current, value)
        else:
            changes[name] = _coerce(hints[name], value)
    return dataclasses.replace(instance, **changes)


def load_settings(config: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Defaults, then the TOML file (if any), then `overrides` (nested dicts, e.g. {"synth": {"people": 1000}})."""
    settings = Settings()
    path = config or (DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.exists() else None)
    if path is not None:
        if not path.exists():
            raise FileNotFoundError(f"settings file {path} does not exist")
        with open(path, "rb") as fh:
            settings = _merge(settings, tomllib.load(fh))
    if overrides:
        settings = _merge(settings, overrides)
    return settings
