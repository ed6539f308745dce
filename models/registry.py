"""A folder of immutable, versioned models per outcome, with a pointer to the one used for scoring.

Layout::

    registry_dir/<outcome>/v0001/   model.txt (LightGBM native) and calibrator.json (the model that scores: the
                                    refit on every labelled period, or the evaluated model if there was none),
                                    evaluated_model.txt and evaluated_calibrator.json (the evaluated model, when
                                    it was refitted), settings.json, features.json,
                                    training_summary.json (with the time split), metrics.json (the model's
                                    evaluation), baselines.json (the baselines', when evaluated), comparison.csv,
                                    promotion.json, reference.json (the training data's distributions, for
                                    monitoring), model_card.md, model_card.html, *.png, manifest.json (sha256
                                    of every file)
    registry_dir/<outcome>/current.json      {"version": "v0001", ...}: the model used for scoring
    registry_dir/<outcome>/promotions.jsonl  every promotion decision, in order

Versions are immutable: a version folder is written in a staging folder and renamed into place once
complete; saving to an existing version raises FileExistsError and the files are made read-only.
Version ids are v0001, v0002, ... in order of registration (sortable as text).

Promotion rule: a new model becomes current when there is no current model, or when forced, or when it is
not worse on the evaluation rows: AUROC >= current AUROC - settings.promotion_auroc_tolerance AND
Brier <= current Brier + settings.promotion_brier_tolerance, comparing evaluated models (a refit was fitted on
the evaluation rows, so it is never the one compared). When an evaluation frame is given, both models
are scored on the new model's evaluation rows (same people, same labels); otherwise the metrics stored with
each version are compared (their evaluation sets may differ, which the decision records).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import stat
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl

from models.calibration import calibrator_from_dict
from models.evaluation import MODEL_NAME, Evaluation
from models.metrics import auroc_score
from models.settings import TrainingSettings
from models.split import TimeSplit
from models.training import TrainedModel, outcome_labels

VERSION_PATTERN = re.compile(r"^v(\d{4,})$")
CURRENT_FILE = "current.json"
PROMOTION_LOG = "promotions.jsonl"
REFERENCE_FILE = "reference.json"  # the training data's distributions, for drift monitoring
MODEL_FILE = "model.txt"  # the booster that scores
CALIBRATOR_FILE = "calibrator.json"
# With a refit, the evaluated model is kept beside it under this prefix (evaluated_model.txt, ...).
EVALUATED_PREFIX = "evaluated_"


@dataclass(frozen=True)
class PromotionDecision:
    outcome: str
    version: str
    promoted: bool
    forced: bool
    reason: str
    basis: str
    candidate: dict[str, float | None]
    current_version: str | None
    current: dict[str, float | None] | None
    auroc_tolerance: float
    brier_tolerance: float
    decided_at: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, (date, Path)):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _dataclass_from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    """Rebuild a settings dataclass from its asdict() form (nested dataclasses, tuples, unions)."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name not in data:
            continue  # a field added after the model was saved keeps its default
        kwargs[field.name] = _coerce(hints[field.name], data[field.name])
    return cls(**kwargs)


def _coerce(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _coerce(args[0], value)
    if dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
        return _dataclass_from_dict(tp, value)  # type: ignore[arg-type]
    if origin is tuple:
        return tuple(value)
    if tp is float and isinstance(value, int):
        return float(value)
    return value


def settings_from_dict(data: Mapping[str, Any]) -> TrainingSettings:
    return _dataclass_from_dict(TrainingSettings, data)


class ModelRegistry:
    """Versioned model store rooted at `registry_dir` (see the module docstring for the layout and rules)."""

    def __init__(self, registry_dir: Path | str) -> None:
        self.registry_dir = Path(registry_dir)

    # -- listing -----------------------------------------------------------------------------------

    def outcome_dir(self, outcome: str) -> Path:
        return self.registry_dir / outcome

    def versions(self, outcome: str) -> list[str]:
        """Registered versions of `outcome`, oldest first."""
        folder = self.outcome_dir(outcome)
        if not folder.is_dir():
            return []
        found = [p.name for p in folder.iterdir() if p.is_dir() and VERSION_PATTERN.match(p.name)]
        return sorted(found, key=lambda name: int(VERSION_PATTERN.match(name).group(1)))  # type: ignore[union-attr]

    def next_version(self, outcome: str) -> str:
        existing = self.versions(outcome)
        number = int(VERSION_PATTERN.match(existing[-1]).group(1)) + 1 if existing else 1  # type: ignore[union-attr]
        return f"v{number:04d}"

    def version_dir(self, outcome: str, version: str) -> Path:
        return self.outcome_dir(outcome) / version

    def current_version(self, outcome: str) -> str | None:
        pointer = self.outcome_dir(outcome) / CURRENT_FILE
        return _read_json(pointer)["version"] if pointer.exists() else None

    # -- saving ------------------------------------------------------------------------------------

    def save(
        self,
        model: TrainedModel,
        evaluation: Evaluation,
        *,
        version: str | None = None,
        eval_frame: pl.DataFrame | None = None,
        force_promotion: bool = False,
        write_card: bool = True,
        reference: Mapping[str, Any] | None = None,
        refit: TrainedModel | None = None,
    ) -> PromotionDecision:
        """Register `model` as a new immutable version and decide whether it becomes current.

        `evaluation` (from `models.evaluation.evaluate_outcome`) goes into metrics.json, baselines.json,
        comparison.csv and the model card. `eval_frame` lets the promotion rule score the
        current model on the new model's evaluation rows. `reference` (models.monitoring.reference_distribution)
        is stored as reference.json, what monitoring measures drift against. `refit` (models.training.refit_outcome)
        is the model refitted on every labelled period for scoring: it is stored as model.txt and calibrator.json,
        and `model`, the one evaluated, as evaluated_model.txt and evaluated_calibrator.json (promotion compares
        evaluated models, never a refit on rows it was fitted on). Returns the promotion decision
        (also written to the version's promotion.json and the outcome's promotions.jsonl).
        """
        if model.booster_ is None or model.calibrator_ is None or model.split_ is None:
            raise ValueError("only fitted models can be registered")
        outcome = model.outcome
        version = version or self.next_version(outcome)
        if not VERSION_PATTERN.match(version):
            raise ValueError(f"version ids look like v0001, not {version!r}")
        final_dir = self.version_dir(outcome, version)
        if final_dir.exists():
            raise FileExistsError(f"{outcome} {version} already exists in {self.registry_dir}; versions are immutable")

        if evaluation.outcome != outcome:
            raise ValueError(f"the evaluation is of {evaluation.outcome}, the model of {outcome}")
        decision = self._decide(model, evaluation, version, eval_frame, force_promotion)
        self.outcome_dir(outcome).mkdir(parents=True, exist_ok=True)
        staging = self.outcome_dir(outcome) / f".staging-{version}-{os.getpid()}"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
        try:
            self._write_version(staging, model, version, evaluation, decision, write_card, reference, refit)
            if final_dir.exists():  # someone registered the same version meanwhile
                raise FileExistsError(f"{outcome} {version} already exists; versions are immutable")
            os.rename(staging, final_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._log_decision(decision)
        if decision.promoted:
            self._point_current(outcome, version, decision.reason)
        return decision

    def _write_version(
        self,
        folder: Path,
        model: TrainedModel,
        version: str,
        evaluation: Evaluation,
        decision: PromotionDecision,
        write_card: bool,
        reference: Mapping[str, Any] | None = None,
        refit: TrainedModel | None = None,
    ) -> None:
        assert model.booster_ is not None and model.calibrator_ is not None and model.split_ is not None
        scoring = refit or model
        assert scoring.booster_ is not None and scoring.calibrator_ is not None
        (folder / MODEL_FILE).write_text(scoring.booster_.model_to_string())
        _write_json(folder / CALIBRATOR_FILE, scoring.calibrator_.to_dict())
        if refit is not None:
            (folder / f"{EVALUATED_PREFIX}{MODEL_FILE}").write_text(model.booster_.model_to_string())
            _write_json(folder / f"{EVALUATED_PREFIX}{CALIBRATOR_FILE}", model.calibrator_.to_dict())
        _write_json(folder / "settings.json", dataclasses.asdict(model.settings))
        _write_json(
            folder / "features.json",
            {
                "outcome": model.outcome,
                "feature_cols": model.feature_cols,
                "categorical_cols": model.categorical_cols,
                "dtypes": model.feature_dtypes_,
                "categories": model.categories_,
            },
        )
        # The split is stored with the rest of the training summary, in its own serialisation.
        _write_json(folder / "training_summary.json", {**model.training_summary_, **model.split_.to_dict()})
        _write_json(
            folder / "metrics.json",
            {
                "evaluation": evaluation.model,
                "subgroups": evaluation.subgroups,
                "importance": evaluation.importance,
                "predictor_choice": evaluation.predictor_choice,
            },
        )
        if evaluation.baselines:
            _write_json(folder / "baselines.json", evaluation.baselines)
            evaluation.comparison().write_csv(folder / "comparison.csv")
        _write_json(folder / "promotion.json", decision.to_dict())
        if reference is not None:
            _write_json(folder / REFERENCE_FILE, dict(reference))
        if write_card:
            from models.model_card import write_model_card

            write_model_card(model, evaluation, folder, version=version)
        manifest = {p.name: _sha256(p) for p in sorted(folder.iterdir()) if p.is_file()}
        _write_json(folder / "manifest.json", manifest)
        for path in folder.iterdir():
            if path.is_file():
                path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)  # read-only: versions do not change

    # -- promotion ---------------------------------------------------------------------------------

    def _decide(
        self,
        model: TrainedModel,
        evaluation: Evaluation,
        version: str,
        eval_frame: pl.DataFrame | None,
        force: bool,
    ) -> PromotionDecision:
        settings = model.settings
        outcome = model.outcome
        current_version = self.current_version(outcome)
        stored = evaluation.model["metrics"]
        candidate = {
            "auroc": stored.get("auroc", {}).get("estimate"),
            "brier": stored.get("brier", {}).get("estimate"),
        }
        current: dict[str, float | None] | None = None
        basis = "no current model"
        if current_version is not None:
            current_model = self.load(outcome, current_version, evaluated=True)
            rows = _evaluation_rows(model, eval_frame) if eval_frame is not None else None
            if rows is not None and all(name in rows.columns for name in current_model.feature_cols):
                candidate = _point_metrics(model, rows)
                current = _point_metrics(current_model, rows)
                basis = f"both scored on the candidate's evaluation rows ({rows.height} rows)"
            else:
                current_stored = self.load_evaluation(outcome, current_version).model["metrics"]
                current = {
                    "auroc": current_stored.get("auroc", {}).get("estimate"),
                    "brier": current_stored.get("brier", {}).get("estimate"),
                }
                basis = (
                    "stored metrics; evaluation index dates "
                    f"{_eval_date(model)} (candidate) vs {_eval_date(current_model)} (current)"
                )

        promoted, reason = _promotion_rule(candidate, current, settings, force)
        return PromotionDecision(
            outcome=outcome,
            version=version,
            promoted=promoted,
            forced=force,
            reason=reason,
            basis=basis,
            candidate=candidate,
            current_version=current_version,
            current=current,
            auroc_tolerance=settings.promotion_auroc_tolerance,
            brier_tolerance=settings.promotion_brier_tolerance,
            decided_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )

    def promote(self, outcome: str, version: str, *, reason: str = "promoted by hand") -> None:
        """Point current.json at an existing version (e.g. a rollback), logged in promotions.jsonl."""
        if not self.version_dir(outcome, version).is_dir():
            raise FileNotFoundError(f"{outcome} {version} is not registered")
        self._log_decision(
            {
                "outcome": outcome,
                "version": version,
                "promoted": True,
                "forced": True,
                "reason": reason,
                "current_version": self.current_version(outcome),
                "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        self._point_current(outcome, version, reason)

    def _point_current(self, outcome: str, version: str, reason: str) -> None:
        pointer = self.outcome_dir(outcome) / CURRENT_FILE
        temporary = pointer.with_suffix(f".tmp-{os.getpid()}")
        _write_json(
            temporary,
            {
                "outcome": outcome,
                "version": version,
                "reason": reason,
                "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
        os.replace(temporary, pointer)  # atomic: readers see the old or the new pointer, never half of one

    def _log_decision(self, decision: PromotionDecision | Mapping[str, Any]) -> None:
        record = decision.to_dict() if isinstance(decision, PromotionDecision) else dict(decision)
        with open(self.outcome_dir(record["outcome"]) / PROMOTION_LOG, "a") as fh:
            fh.write(json.dumps(record, sort_keys=True, default=_json_default) + "\n")

    # -- loading -----------------------------------------------------------------------------------

    def load(self, outcome: str, version: str, verify: bool = True, evaluated: bool = False) -> TrainedModel:
        """Rebuild the TrainedModel stored as `outcome`/`version` (checking file hashes when `verify`): the model
        that scores, or with `evaluated` the model that was evaluated (the same one when there was no refit)."""
        folder = self.version_dir(outcome, version)
        if not folder.is_dir():
            raise FileNotFoundError(f"{outcome} {version} is not registered in {self.registry_dir}")
        if verify:
            manifest = _read_json(folder / "manifest.json")
            for name, digest in manifest.items():
                if _sha256(folder / name) != digest:
                    raise ValueError(f"{folder / name} does not match its recorded hash: the version was altered")
        features = _read_json(folder / "features.json")
        settings = settings_from_dict(_read_json(folder / "settings.json"))
        model = TrainedModel(outcome, features["feature_cols"], features["categorical_cols"], settings)
        prefix = EVALUATED_PREFIX if evaluated and (folder / f"{EVALUATED_PREFIX}{MODEL_FILE}").exists() else ""
        model.booster_ = lgb.Booster(model_str=(folder / f"{prefix}{MODEL_FILE}").read_text())
        model.calibrator_ = calibrator_from_dict(_read_json(folder / f"{prefix}{CALIBRATOR_FILE}"))
        model.feature_dtypes_ = dict(features["dtypes"])
        model.categories_ = {name: list(values) for name, values in features["categories"].items()}
        summary = _read_json(folder / "training_summary.json")
        model.split_ = TimeSplit.from_dict(summary)
        model.training_summary_ = {k: v for k, v in summary.items() if k not in model.split_.to_dict()}
        return model

    def model_digest(self, outcome: str, version: str) -> str:
        """The sha256s of what scores with a version (the booster and its calibrator), from its manifest: two
        versions with equal digests give equal scores."""
        manifest = _read_json(self.version_dir(outcome, version) / "manifest.json")
        return ";".join(f"{name}={manifest[name]}" for name in (MODEL_FILE, CALIBRATOR_FILE))

    def load_evaluation(self, outcome: str, version: str) -> Evaluation:
        """The evaluation stored with `outcome`/`version` (the model's, and its baselines' when evaluated)."""
        folder = self.version_dir(outcome, version)
        metrics = _read_json(folder / "metrics.json")
        baselines = _read_json(folder / "baselines.json") if (folder / "baselines.json").exists() else {}
        return Evaluation(
            outcome,
            {MODEL_NAME: metrics["evaluation"], **baselines},
            metrics["subgroups"],
            metrics["importance"],
            metrics.get("predictor_choice", []),
        )

    def reference(self, outcome: str, version: str) -> dict[str, Any] | None:
        """The training data's distributions stored with a version (None for versions from before monitoring)."""
        path = self.version_dir(outcome, version) / REFERENCE_FILE
        return _read_json(path) if path.exists() else None

    def load_current(self, outcome: str) -> TrainedModel:
        version = self.current_version(outcome)
        if version is None:
            raise FileNotFoundError(f"no current model for {outcome} in {self.registry_dir}")
        return self.load(outcome, version)


def load_current(registry_dir: Path | str, outcome: str) -> TrainedModel:
    """The model currently used for scoring `outcome`."""
    return ModelRegistry(registry_dir).load_current(outcome)


def _eval_date(model: TrainedModel) -> date | None:
    return model.split_.eval_index_date if model.split_ is not None else None


def _evaluation_rows(model: TrainedModel, frame: pl.DataFrame) -> pl.DataFrame | None:
    if model.split_ is None or model.outcome not in frame.columns:
        return None
    rows = model.split_.eval_rows(frame, model.outcome)
    return rows if rows.height else None


def _point_metrics(model: TrainedModel, rows: pl.DataFrame) -> dict[str, float | None]:
    y = outcome_labels(rows, model.outcome)
    raw = model.predict_raw_logodds(rows)
    p = model.predict_proba(rows)
    both_classes = 0 < y.sum() < len(y)
    return {
        "auroc": auroc_score(y, raw) if both_classes else None,
        "brier": float(np.mean((p - y) ** 2)),
    }


def _promotion_rule(
    candidate: Mapping[str, float | None],
    current: Mapping[str, float | None] | None,
    settings: TrainingSettings,
    force: bool,
) -> tuple[bool, str]:
    if current is None:
        return True, "first model for this outcome"
    auroc_new, brier_new = candidate.get("auroc"), candidate.get("brier")
    auroc_cur, brier_cur = current.get("auroc"), current.get("brier")
    if None in (auroc_new, brier_new, auroc_cur, brier_cur):
        return force, ("forced; " if force else "") + "metrics missing: cannot apply the rule"
    assert auroc_new is not None and brier_new is not None and auroc_cur is not None and brier_cur is not None
    auroc_ok = auroc_new >= auroc_cur - settings.promotion_auroc_tolerance
    brier_ok = brier_new <= brier_cur + settings.promotion_brier_tolerance
    comparison = (
        f"AUROC {auroc_new:.4f} vs {auroc_cur:.4f} (tolerance {settings.promotion_auroc_tolerance}), "
        f"Brier {brier_new:.4f} vs {brier_cur:.4f} (tolerance {settings.promotion_brier_tolerance})"
    )
    if auroc_ok and brier_ok:
        return True, f"not worse than the current model: {comparison}"
    failed = " and ".join(name for name, ok in (("AUROC", auroc_ok), ("Brier", brier_ok)) if not ok)
    if force:
        return True, f"forced despite worse {failed}: {comparison}"
    return False, f"worse {failed} than the current model: {comparison}"
