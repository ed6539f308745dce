"""One typed settings object for a riskstrat run, validated when it is loaded.

Defaults suit the embedded demo. A `riskstrat.toml` (in the working directory, or named with
`--config`) overrides any of them; CLI flags and flow parameters override the file. Each layer owns
its part (`SynthSettings`, `OutcomeSettings`, `TrainingSettings`, ...) as a plain dataclass whose
`Annotated` constraints pydantic checks here; this module composes them and adds the checks that span
layers (the trained outcomes are declared in `data_contracts.outcomes`, the ranking outcome is trained, the
held-out shares leave rows to fit on). A wrong value raises
`SettingsError`: one line naming the file (or the overrides), the key and what is wrong.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, StrictInt, StrictStr, TypeAdapter, ValidationError

from data_contracts.errors import DomainError
from data_contracts.outcomes import OUTCOMES_BY_NAME, OutcomeSettings
from data_contracts.settings import IngestSettings, QualitySettings, SynthSettings
from data_contracts.tables import TABLES
from models.settings import MAX_SEED, MonitoringSettings, ScoringSettings, TrainingSettings
from pipelines.workspace.settings import WorkspaceSettings

DEFAULT_CONFIG_FILE = Path("riskstrat.toml")
OVERRIDES_SOURCE = "overrides (command-line flags or flow parameters)"


class SettingsError(DomainError, ValueError):
    """A settings file or override holds a value riskstrat cannot run with (the message is one line)."""


def _cron(expression: str) -> str:
    """Five fields, checked with cronsim (installed with Prefect). Prefect refuses random and hashed
    expressions (R, H) too, so they are refused here rather than when a deployment is served."""
    from cronsim import CronSim, CronSimError

    fields = expression.split()
    if len(fields) != 5 or any(f.casefold() in ("r", "h") for f in fields):
        raise ValueError("not a cron expression of five fields (minute hour day month weekday) without R or H")
    try:
        CronSim(expression, datetime(2026, 1, 1))
    except CronSimError as exc:
        raise ValueError(f"not a valid cron expression ({exc})") from exc
    return expression


def _time_zone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("not an IANA time zone name (e.g. 'Europe/London')") from exc
    return name


def _template_folder(folder: Path | None) -> Path | None:
    if folder is not None and not Path(folder).is_dir():
        raise ValueError(f"{folder} is not a folder (it should hold page templates that replace the shipped ones)")
    return folder


Cron = Annotated[StrictStr, AfterValidator(_cron)]


@dataclass
class ScheduleSettings:
    __pydantic_config__ = ConfigDict(extra="forbid")

    weekly_cron: Cron = "0 6 * * 1"
    retrain_cron: Cron = "0 5 1 */3 *"
    evaluate_cron: Cron = "0 7 2 * *"  # the evaluation of case management, monthly
    timezone: Annotated[StrictStr, AfterValidator(_time_zone)] = "Europe/London"


Seconds = Annotated[StrictInt, Field(ge=1)]


@dataclass
class RunSettings:
    """Prefect runs: every task's time limit, and the retries of transient failures (a rejected batch, a failed
    gate or a wrong setting is never retried: see `pipelines.runs.retry_transient`)."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    generate_timeout_seconds: Seconds = 3 * 3600
    ingest_timeout_seconds: Seconds = 3600  # one batch
    gates_timeout_seconds: Seconds = 600
    train_timeout_seconds: Seconds = 8 * 3600
    score_timeout_seconds: Seconds = 2 * 3600
    publish_timeout_seconds: Seconds = 3600
    monitor_timeout_seconds: Seconds = 3600
    workspace_timeout_seconds: Seconds = 600  # the caseload export and the erasure of opted-out decisions
    retries: Annotated[StrictInt, Field(ge=0, le=10)] = 2
    retry_delay_seconds: Annotated[StrictInt, Field(ge=0)] = 10
    # Where scoring and explanation run: "local", one process (DuckDB and Polars, the default), or "dask":
    # mapped per person partition on Prefect's Dask task runner (pipelines/partitions.py), on the scheduler at
    # dask_address ("tcp://host:8786"), or on a temporary local cluster when it is not set.
    task_runner: Literal["local", "dask"] = "local"
    dask_address: StrictStr | None = None
    score_partitions: Annotated[StrictInt, Field(ge=1, le=65536)] = 8
    # The partitions' Parquet files (person-level, removed after each run): a folder every worker sees.
    # Default: HOME/partitions.
    partition_dir: Path | None = None

    def timeout(self, step: str) -> int:
        return int(getattr(self, f"{step}_timeout_seconds"))


@dataclass
class EvaluationSettings:
    """The evaluation of the case-management service (`riskstrat evaluate`, pipelines/evaluate.py)."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    # The evaluation plan; None: ./evaluation.toml if present, else the shipped default plan.
    plan: Path | None = None
    # Outcome metrics and control charts cover this many whole months before the latest data.
    metrics_months: Annotated[StrictInt, Field(ge=3, le=120)] = 24


@dataclass
class Settings:
    __pydantic_config__ = ConfigDict(extra="forbid")

    # Everything a run writes lives under `home` unless a path is given explicitly.
    home: Path = Path("var")
    db_path: Path | None = None
    batches_dir: Path | None = None
    registry_dir: Path | None = None
    outputs_dir: Path | None = None
    # A local team's page templates (and a `static/` folder of CSS and JS) that replace the shipped ones of the
    # same name, to reword or rebrand the published pages without editing Python (see pipelines.publish).
    templates_dir: Annotated[Path | None, AfterValidator(_template_folder)] = None
    # Seeds every generator and model: the synthetic population, the person-grouped splits, LightGBM, the
    # baselines and the bootstrap (through `training.seed`, which always equals it).
    seed: Annotated[StrictInt, Field(ge=0, le=MAX_SEED)] = 20261124
    synth: SynthSettings = field(default_factory=SynthSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    outcomes: OutcomeSettings = field(default_factory=OutcomeSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    scoring: ScoringSettings = field(default_factory=ScoringSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    workspace: WorkspaceSettings = field(default_factory=WorkspaceSettings)
    quality: QualitySettings = field(default_factory=QualitySettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    runs: RunSettings = field(default_factory=RunSettings)

    def __post_init__(self) -> None:
        if self.training.seed != self.seed:
            self.training = dataclasses.replace(self.training, seed=self.seed)

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

    @property
    def workspace_dir(self) -> Path:
        """The MDT workspace's own state and published snapshots (see `pipelines.workspace`)."""
        return Path(self.home) / "workspace"

    def to_dict(self) -> dict[str, Any]:
        """The settings as a file or overrides would give them (JSON-able; `training.seed` is derived, not given)."""
        data = _jsonable(dataclasses.asdict(self))
        del data["training"]["seed"]
        return data

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


_SETTINGS = TypeAdapter(Settings)


def _with_overrides(base: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` (a settings dataclass) as a dict with `overrides` applied: a nested settings group merges key by
    key, any other value (tiers included) is replaced whole."""
    merged: dict[str, Any] = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    if isinstance(base, TrainingSettings):
        del merged["seed"]  # derived from the top-level seed
    for key, value in overrides.items():
        current = merged.get(key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            merged[key] = _with_overrides(current, value)
        else:
            merged[key] = value
    return merged


def _key(loc: tuple[int | str, ...]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def _error_line(exc: ValidationError, source: str) -> str:
    """Pydantic's errors as one line: `source: key = value: what is wrong; ...`."""
    problems = []
    for error in exc.errors(include_url=False):
        key = _key(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "unexpected_keyword_argument":
            problems.append(f"{key}: unknown setting")
        else:
            problems.append(f"{key} = {error['input']!r}: {message}")
    return f"{source}: {'; '.join(problems)}"


def _validated(data: dict[str, Any], source: str) -> Settings:
    if isinstance(data.get("training"), dict) and "seed" in data["training"]:
        raise SettingsError(f"{source}: training.seed: not a setting; the top-level `seed` seeds every model")
    try:
        settings = _SETTINGS.validate_python(data)
    except ValidationError as exc:
        raise SettingsError(_error_line(exc, source)) from None
    _check_across_layers(settings, source)
    return settings


def _check_across_layers(settings: Settings, source: str) -> None:
    t, s = settings.training, settings.scoring
    unknown = [o for o in t.outcomes if o not in OUTCOMES_BY_NAME]
    if unknown:
        raise SettingsError(
            f"{source}: training.outcomes: unknown outcome {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(OUTCOMES_BY_NAME)})"
        )
    if s.ranking_outcome not in t.outcomes:
        raise SettingsError(
            f"{source}: scoring.ranking_outcome = {s.ranking_outcome!r}: not among training.outcomes "
            f"({', '.join(t.outcomes)})"
        )
    feeds = [f for f in settings.quality.feeds if f not in TABLES or TABLES[f].dated_by is None]
    if feeds:
        raise SettingsError(f"{source}: quality.feeds: {', '.join(map(repr, feeds))}: not dated contract tables")
    if t.validation_fraction + t.calibration_fraction >= 1:
        raise SettingsError(
            f"{source}: training.validation_fraction + training.calibration_fraction = "
            f"{t.validation_fraction + t.calibration_fraction:g}: must leave people to fit on (below 1)"
        )


def load_settings(config: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Defaults, then the TOML file (if any), then `overrides` (nested dicts, e.g. {"synth": {"people": 1000}}).

    The file is validated on its own first, so an error names the file when the file is wrong and the overrides
    when they are. Raises `SettingsError` (one line) for a missing or unreadable file or any invalid value."""
    path = config or (DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.exists() else None)
    settings = Settings()
    if path is not None:
        try:
            with open(path, "rb") as fh:
                from_file = tomllib.load(fh)
        except FileNotFoundError:
            raise SettingsError(f"settings file {path} does not exist") from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"{path}: cannot be read as TOML ({exc})") from None
        settings = _validated(from_file, str(path))
    if overrides:
        settings = _validated(_with_overrides(settings, overrides), OVERRIDES_SOURCE)
    return settings
