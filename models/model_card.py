"""Model cards in Markdown and HTML, with plots, rendered only from a TrainedModel and its `Evaluation`.

The card is built once as a list of blocks (headings, paragraphs, lists, tables, images, code) and rendered
to both formats, so the two never disagree. PNGs are written next to the card; the Markdown links them by
relative path and the HTML embeds them as base64 so it can be mailed or attached on its own.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from data_contracts.reference import REFERENCE_CURRENCY, codelist
from features.catalogue import CATALOGUE
from models.baselines import ORACLE_NAME
from models.evaluation import MODEL_NAME, Evaluation, format_estimate
from models.metrics import top_label
from models.training import TrainedModel

INTENDED_USE = [
    "Risk stratification for proactive case finding: ranking people so that multidisciplinary teams (MDTs) "
    "can review those most likely to have the outcome in the next year and offer support early.",
    "Lists are a starting point for clinical and social care judgement, reviewed by people who know the "
    "person; each person on a list comes with the features that pushed their score up.",
    "Capacity planning: the operational figures (PPV, sensitivity, events captured in the top 0.5%, 2%, 5% "
    "and 20%) say how many people a team would need to see to reach how many future events.",
]
NOT_INTENDED_FOR = [
    "Denying, rationing or withdrawing care, or deciding eligibility for services.",
    "Individual diagnosis or prognosis outside an MDT review.",
    "Evaluating whether case management works: people selected because they are high risk regress to the "
    "mean, so before-and-after comparisons on the selected cohort mislead.",
]
KNOWN_LIMITATIONS = [
    "Probabilities are calibrated on a held-out part of the fit period and checked on the evaluation period "
    "only; calibration drifts when services, coding or the population change.",
    "Drift: refit regularly and monitor. SPARRA v4 lost about 0.03 AUROC over two years without refitting.",
    "The evidence that case management of high-risk people reduces admissions or cost is mixed (a 36-study "
    "meta-analysis found no effect on cost or use; an English pilot saw +9% emergency admissions; the "
    "PRISMATIC trial +1%). Evaluate any service built on these lists with comparison groups.",
    "Cost is a biased label: at equal predicted cost, groups with less access to care are sicker "
    "(Obermeyer et al., Science 2019). Prefer need-based outcomes (emergency admission, frequent use, care "
    "home admission) and read the subgroup table: calibration across groups does not imply equal false "
    "positive and false negative rates.",
    "When trained on synthetic data (the demo), the figures describe the simulator, not real populations: "
    "re-evaluate on local records before any use.",
    "Explanations are contributions to the raw model's log-odds (TreeSHAP), not causal effects; they say why "
    "the model scored a person highly, not what would lower their risk.",
    "People without records (unregistered, recently arrived, opted out) cannot be scored; missing data "
    "look like low use and hence low risk.",
]
SUMMARY_METRICS: tuple[str, ...] = ("auroc", "auprc", "brier", "calibration_slope", "calibration_intercept")


# --------------------------------------------------------------------------------------------- blocks


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class BulletList:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    filename: str
    alt: str


@dataclass
class Code:
    text: str


Block = Heading | Paragraph | BulletList | Table | Image | Code


def render_markdown(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append("#" * block.level + " " + block.text)
        elif isinstance(block, Paragraph):
            out.append(block.text)
        elif isinstance(block, BulletList):
            out.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            header = [cell.replace("|", "\\|") for cell in block.header]
            lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(block.header)]
            lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in block.rows]
            out.append("\n".join(lines))
        elif isinstance(block, Image):
            out.append(f"![{block.alt}]({block.filename})")
        elif isinstance(block, Code):
            out.append("```json\n" + block.text + "\n```")
    return "\n\n".join(out) + "\n"


HTML_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; }
pre { background: #f5f5f5; padding: 0.75rem; overflow-x: auto; font-size: 0.8rem; }
"""


def render_html(blocks: Sequence[Block], title: str, image_dir: Path) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{HTML_STYLE}</style></head><body>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            out.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, BulletList):
            out.append("<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(cell)}</th>" for cell in block.header)
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in block.rows
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Image):
            data = base64.b64encode((image_dir / block.filename).read_bytes()).decode("ascii")
            out.append(f'<img src="data:image/png;base64,{data}" alt="{html.escape(block.alt)}">')
        elif isinstance(block, Code):
            out.append(f"<pre>{html.escape(block.text)}</pre>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------- plots


def baselines_that_rank_better(evaluations: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Warnings for practical baselines whose AUROC on the evaluation set beats the model's (the oracle, a
    synthetic-data ceiling, is not a rival a team could use)."""
    model_auroc = evaluations[MODEL_NAME]["metrics"]["auroc"]["estimate"]
    warnings = []
    for name, evaluation in evaluations.items():
        auroc = evaluation["metrics"]["auroc"]["estimate"]
        if name in (MODEL_NAME, ORACLE_NAME) or auroc is None or model_auroc is None or auroc <= model_auroc:
            continue
        warnings.append(
            f"On the evaluation set the baseline '{name}' ranks people better than this model (AUROC {auroc:.3f} "
            f"against {model_auroc:.3f}, {evaluations[MODEL_NAME]['events']} events). With few events a tree "
            "model has too little to learn from: prefer the baseline's ranking for this outcome, or pool more "
            "index dates or a larger population before relying on it."
        )
    return warnings


def write_plots(model: TrainedModel, model_evaluation: Evaluation, out_dir: Path) -> dict[str, Path]:
    """ROC, precision-recall, calibration (deciles), gains/lift and feature-contribution PNGs."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    evaluations = model_evaluation.results
    paths: dict[str, Path] = {}

    def save(fig: Any, name: str) -> None:
        path = out_dir / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths[name] = path

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, evaluation in evaluations.items():
        roc = evaluation["curves"].get("roc")
        if roc:
            auroc = evaluation["metrics"]["auroc"]["estimate"]
            ax.plot(roc["fpr"], roc["tpr"], label=f"{name} (AUROC {auroc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="False positive rate", ylabel="Sensitivity", title="ROC curve")
    ax.legend(fontsize=7, loc="lower right")
    save(fig, "roc")

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, evaluation in evaluations.items():
        pr = evaluation["curves"].get("precision_recall")
        if pr:
            auprc = evaluation["metrics"]["auprc"]["estimate"]
            ax.plot(pr["recall"], pr["precision"], label=f"{name} (AUPRC {auprc:.3f})")
    ax.axhline(model_evaluation.model["prevalence"], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="Sensitivity (recall)", ylabel="PPV (precision)", title="Precision-recall curve", ylim=(0, 1))
    ax.legend(fontsize=7, loc="upper right")
    save(fig, "precision_recall")

    fig, ax = plt.subplots(figsize=(5, 5))
    deciles = model_evaluation.model["deciles"]
    predicted = [d["mean_predicted"] for d in deciles]
    observed = [d["observed_rate"] for d in deciles]
    lower = [
        d["observed_rate"] - (d["observed_lo"] if d["observed_lo"] is not None else d["observed_rate"]) for d in deciles
    ]
    upper = [
        (d["observed_hi"] if d["observed_hi"] is not None else d["observed_rate"]) - d["observed_rate"] for d in deciles
    ]
    ax.errorbar(predicted, observed, yerr=[lower, upper], fmt="o", capsize=3, label="deciles (95% interval)")
    top = max([*predicted, *observed, 0.01]) * 1.05
    ax.plot([0, top], [0, top], color="grey", linestyle=":", linewidth=1, label="perfect calibration")
    ax.set(
        xlabel="Mean predicted probability",
        ylabel="Observed rate",
        title="Calibration by decile",
        xlim=(0, top),
        ylim=(0, top),
    )
    ax.legend(fontsize=7, loc="upper left")
    save(fig, "calibration")

    fig, (ax_gain, ax_lift) = plt.subplots(1, 2, figsize=(10, 4.5))
    for name, evaluation in evaluations.items():
        gains = evaluation["curves"].get("gains")
        if gains:
            x, y = gains["population_fraction"], gains["events_fraction"]
            ax_gain.plot(x, y, label=name)
            lift = [(yy / xx) if xx > 0 else float("nan") for xx, yy in zip(x, y, strict=True)]
            ax_lift.plot(x[1:], lift[1:], label=name)
    for fraction in model_evaluation.model.get("top_fractions", []):
        for ax in (ax_gain, ax_lift):
            ax.axvline(fraction, color="grey", linestyle=":", linewidth=0.8)
    ax_gain.plot([0, 1], [0, 1], color="grey", linewidth=1)
    ax_gain.set(
        xlabel="Fraction of population (highest scores first)",
        ylabel="Fraction of events captured",
        title="Cumulative gains",
    )
    ax_lift.set(xscale="log", xlabel="Fraction of population (log scale)", ylabel="Lift (x prevalence)", title="Lift")
    ax_gain.legend(fontsize=7, loc="lower right")
    save(fig, "gains_lift")

    importance = used_importance(model_evaluation)[:15]
    if importance:
        fig, ax = plt.subplots(figsize=(6, 0.35 * len(importance) + 1.2))
        names = [feature_words(item["feature"]) for item in importance][::-1]
        values = [item["mean_abs_contribution"] for item in importance][::-1]
        ax.barh(names, values)
        ax.set(xlabel="Mean |contribution| to log-odds", title=f"What drives the score ({importance[0]['rows']} rows)")
        save(fig, "feature_contributions")
    return paths


# --------------------------------------------------------------------------------------------- the card


# Subgroup columns and their values in words: the lists say "Female", so the card does too.
GROUPING_WORDS = {
    "age_band": "Age band",
    "sex": "Sex",
    "imd_quintile": "Deprivation quintile (1 = most deprived)",
    "ethnicity_group": "Ethnic group",
}


def group_words(grouping: str, group: str) -> str:
    if grouping in ("sex", "ethnicity_group"):
        return codelist(grouping).codes.get(group, group)
    return group


def feature_words(name: str) -> str:
    """A feature as a reader says it: its catalogue label (the column name when the catalogue has none)."""
    known = CATALOGUE.get(name)
    return known.label if known is not None else name


def used_importance(evaluation: Evaluation) -> list[dict[str, Any]]:
    """The features the model uses: a feature with no contribution on the evaluation rows is in no tree split."""
    return [item for item in evaluation.importance if item["mean_abs_contribution"] > 0]


def _rate(row: Mapping[str, Any], name: str) -> str:
    """A subgroup error rate with its interval (rows stored before intervals existed show the rate alone)."""
    return format_estimate(row.get(name), row.get(f"{name}_lo"), row.get(f"{name}_hi"))


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


CALIBRATION_WORDS = {
    "isotonic": (
        "isotonic regression through the centroids of its blocks, interpolated in log-odds and continued beyond "
        "them at the Platt slope, so the map is smooth and strictly increasing: people ranked apart read different "
        "risks"
    ),
    "platt": "a logistic (Platt) map of the raw log-odds, shrunk towards the model's own probabilities",
}


def calibration_text(summary: Mapping[str, Any]) -> str:
    """How the raw scores became probabilities, in words (what every "calibrated probability" rests on)."""
    kind = summary.get("calibration")
    words = CALIBRATION_WORDS.get(str(kind), str(kind))
    rows, events = summary.get("calibration_rows"), summary.get("calibration_events")
    fitted_on = f" Fitted on {rows} rows with {events} events held out from the boosting." if rows else ""
    return f"The probabilities are {words}.{fitted_on}"


def refit_text(summary: Mapping[str, Any], fit_dates: Sequence[Any]) -> str:
    """Which model was evaluated, which one scores, and how the refit was checked, in words."""
    evaluated = f"The performance below is of the model fitted on {', '.join(str(d) for d in fit_dates)}."
    shift = summary.get("calibration_in_the_large")
    large = (
        f" Calibration in the large on the newest period: its risks were moved towards the {shift['events']} events "
        f"of its {shift['rows']} held-out people at {shift['index_date']} (expected before: "
        f"{shift['expected_before']:.0f}), by {shift['shift_logodds']:+.3f} log-odds, as far as that many events "
        "support a change of level."
        if shift
        else ""
    )
    refit = summary.get("refit") or {}
    if not refit.get("refitted"):
        reason = refit.get("reason", "no refit was made")
        return f"{evaluated}{large} The scores come from this same model: {reason}."
    auroc_refit, auroc_evaluated = refit.get("auroc_refit"), refit.get("auroc_evaluated")
    return (
        f"{evaluated}{large} The scores come from a refit of it on every labelled period up to the evaluation date "
        f"({', '.join(refit['refit_index_dates'])}: {refit['rows']} rows, {refit['events']} events; "
        f"{refit['best_iteration']} trees), so the most recent year and the fullest history shape the risks. Check "
        f"of the refit: on its {refit['check_rows']} held-out people at {refit['check_index_date']} "
        f"({refit['check_events']} events), never seen by the evaluated model and not used to grow the refit's "
        f"trees, AUROC {_fmt(auroc_refit)} for the refit against {_fmt(auroc_evaluated)} for the evaluated model "
        f"(the refit must not be worse by more than {refit['auroc_tolerance']}); the evaluated model's observed/"
        f"expected events there was {_fmt(refit.get('observed_over_expected_evaluated'))}. The refit's own "
        "performance on a later year can only be measured once that year has happened (monitoring does)."
    )


def predictor_choice_blocks(variants: Sequence[Mapping[str, Any]]) -> list[Block]:
    """The effect of using ethnic group and area deprivation as predictors: overall, and the error rates by
    ethnic group and deprivation, for the configured model and each choice reversed (same evaluation rows)."""
    names = [str(v["variant"]) for v in variants]
    overall = [
        [metric, *[_metric_text(v["metrics"].get(metric)) for v in variants]]
        for metric in ("auroc", "auprc", "ppv_top_5pct", "calibration_intercept")
    ]
    keys = [(s["grouping"], s["group"]) for s in variants[0]["subgroups"]]
    by_key = [{(s["grouping"], s["group"]): s for s in v["subgroups"]} for v in variants]
    rows = [
        [
            GROUPING_WORDS.get(str(grouping), str(grouping)),
            group_words(str(grouping), str(group)),
            *[
                f"{_rate(found[(grouping, group)], 'false_positive_rate')} / "
                f"{_rate(found[(grouping, group)], 'false_negative_rate')}"
                if (grouping, group) in found
                else "n/a"
                for found in by_key
            ],
        ]
        for grouping, group in keys
    ]
    used = variants[0]["predictors"]
    return [
        Heading("Protected characteristics as predictors"),
        Paragraph(
            f"This model uses ethnic group as a predictor: {'yes' if used.get('ethnicity') else 'no'}; area "
            f"deprivation: {'yes' if used.get('deprivation') else 'no'} (settings training.ethnicity_as_predictor "
            "and training.deprivation_as_predictor; the reasons for the defaults are in models/settings.py). The "
            "same model was fitted with each choice reversed and evaluated on the same rows, so the effect of the "
            "choice can be read here: overall, and as the false positive / false negative rates at the list cut by "
            "ethnic group and deprivation (95% Wilson intervals)."
        ),
        Table(["metric", *names], overall),
        Table(["grouping", "group", *[f"FPR / FNR: {n}" for n in names]], rows),
    ]


def _metric_text(values: Mapping[str, Any] | None) -> str:
    if not values:
        return "n/a"
    return format_estimate(values.get("estimate"), values.get("lo"), values.get("hi"))


def build_card(
    model: TrainedModel, model_evaluation: Evaluation, plots: Mapping[str, Path], version: str | None = None
) -> list[Block]:
    summary = model.training_summary_
    split = model.split_
    if split is None:
        raise ValueError("a model card needs the time split the model was fitted with")
    evaluation = model_evaluation.model
    metrics = evaluation["metrics"]
    evaluations = model_evaluation.results
    title = f"Model card: {model.outcome}" + (f" ({version})" if version else "")
    auroc = metrics["auroc"]
    blocks: list[Block] = [
        Heading(title, 1),
        Paragraph(
            f"LightGBM model predicting {model.outcome} within {split.horizon_months} months of the "
            f"index date. Fitted on index dates {', '.join(str(d) for d in split.fit_index_dates)}; evaluated out "
            f"of time on {split.eval_index_date} ({evaluation['n']} people, {evaluation['events']} events, "
            f"prevalence {evaluation['prevalence']:.3f}): AUROC "
            f"{format_estimate(auroc['estimate'], auroc['lo'], auroc['hi'])}. Intervals are 95% percentile "
            f"bootstrap intervals ({evaluation['bootstrap']['samples']} replicates)."
        ),
        Heading("Intended use"),
        BulletList(INTENDED_USE),
        Heading("Not intended for"),
        BulletList(NOT_INTENDED_FOR),
        Heading("Training data"),
        Table(
            ["part", "rows", "people", "events", "index dates"],
            [
                [name, str(part["rows"]), str(part["people"]), str(part["events"]), ", ".join(part["index_dates"])]
                for name, part in summary.get("parts", {}).items()
            ]
            + [
                [
                    "evaluation",
                    str(summary.get("eval_rows")),
                    str(summary.get("eval_people")),
                    str(summary.get("eval_events")),
                    str(split.eval_index_date),
                ]
            ],
        ),
        Paragraph(
            "Train, early-stopping validation and calibration parts are split by person (all rows of a person "
            "on one side). Fit index dates have outcome windows that end on or before the evaluation index "
            f"date. Best iteration {summary.get('best_iteration')}, training time {summary.get('train_seconds')} "
            f"s, calibration: {summary.get('calibration')}, {summary.get('features')} features."
        ),
        Paragraph(calibration_text(summary)),
        Paragraph(refit_text(summary, split.fit_index_dates)),
        *([Paragraph(f"Warning: {summary['calibration_warning']}")] if summary.get("calibration_warning") else []),
        Paragraph(
            "Costs (the cost features and the high_cost outcome) are in "
            f"{summary.get('cost_currency', REFERENCE_CURRENCY)}, as the source recorded them: costs are never "
            "converted between currencies."
        ),
        Heading("Performance"),
    ]
    names = list(evaluations)
    metric_names = [
        *SUMMARY_METRICS,
        *[
            f"{kind}_{top_label(f)}"
            for f in evaluation["top_fractions"]
            for kind in ("ppv", "sensitivity", "events_captured")
        ],
    ]
    rows = []
    for metric in metric_names:
        row = [metric]
        for name in names:
            values = evaluations[name]["metrics"].get(metric)
            digits = 0 if metric.startswith("events_captured") else 3
            row.append(format_estimate(values["estimate"], values["lo"], values["hi"], digits) if values else "")
        rows.append(row)
    blocks += [
        Paragraph(
            "Calibration slope: b in logit P(y=1) = a + b logit(p) (1 is ideal); calibration intercept: a with the "
            "slope fixed at 1 (0 is ideal). Top-k: the k = ceil(fraction x n) highest scores."
        ),
        Table(["metric", *names], rows),
        Image(plots["roc"].name, "ROC curve") if "roc" in plots else Paragraph(""),
        Image(plots["precision_recall"].name, "Precision-recall curve")
        if "precision_recall" in plots
        else Paragraph(""),
        Image(plots["gains_lift"].name, "Cumulative gains and lift") if "gains_lift" in plots else Paragraph(""),
        Heading("Calibration by decile"),
        Table(
            ["decile", "n", "events", "mean predicted", "observed (95% interval)"],
            [
                [
                    str(d["decile"]),
                    str(d["n"]),
                    str(d["events"]),
                    _fmt(d["mean_predicted"]),
                    format_estimate(d["observed_rate"], d["observed_lo"], d["observed_hi"]),
                ]
                for d in evaluation["deciles"]
            ],
        ),
        Image(plots["calibration"].name, "Calibration by decile") if "calibration" in plots else Paragraph(""),
        Heading("Subgroups"),
    ]
    if model_evaluation.subgroups:
        blocks += [
            Paragraph(
                "Calibration in the large = observed rate - mean predicted (> 0: the model under-predicts for the "
                "group). False positive / negative rates (FPR: share of the group's people without the outcome who "
                "are flagged; FNR: share of those with it who are not) are for flagging the population's top "
                f"{model.settings.subgroup_flag_fraction:.0%}, with 95% Wilson intervals. Groups can be equally well "
                "calibrated while these rates differ widely. AUROC is n/a for groups with fewer than "
                f"{model.settings.subgroup_min_n} people or {model.settings.subgroup_min_events} events."
            ),
            Table(
                ["grouping", "group", "n", "events", "AUROC", "calibration in the large", "FPR", "FNR"],
                [
                    [
                        GROUPING_WORDS.get(str(s["grouping"]), str(s["grouping"])),
                        group_words(str(s["grouping"]), str(s["group"])),
                        str(s["n"]),
                        str(s["events"]),
                        _fmt(s["auroc"]),
                        _fmt(s["calibration_in_the_large"], 4),
                        _rate(s, "false_positive_rate"),
                        _rate(s, "false_negative_rate"),
                    ]
                    for s in model_evaluation.subgroups
                ],
            ),
        ]
    else:
        blocks.append(Paragraph("No subgroup columns were given to the evaluation."))
    if model_evaluation.predictor_choice:
        blocks += predictor_choice_blocks(model_evaluation.predictor_choice)
    blocks.append(Heading("What drives the score"))
    used = used_importance(model_evaluation)
    if used:
        unused = len(model_evaluation.importance) - len(used)
        blocks += [
            Paragraph(
                "How much each factor moves the score on average: the mean absolute TreeSHAP contribution to the "
                f"raw model's log-odds (before calibration), on {used[0]['rows']} evaluation rows. Only the "
                f"{len(used)} factors the model uses are shown"
                + (f"; {unused} others had no effect and are listed under Features." if unused else ".")
            ),
            Table(
                ["factor", "mean |contribution|"],
                [[feature_words(item["feature"]), _fmt(item["mean_abs_contribution"], 4)] for item in used],
            ),
        ]
        if "feature_contributions" in plots:
            blocks.append(Image(plots["feature_contributions"].name, "Mean absolute contribution by feature"))
    blocks += [
        Heading("Known limitations"),
        BulletList([*baselines_that_rank_better(evaluations), *KNOWN_LIMITATIONS]),
        Heading("Settings"),
        Code(json.dumps(asdict(model.settings), indent=2, sort_keys=True)),
        Heading("Features"),
        *_features_blocks(model, model_evaluation),
    ]
    return [block for block in blocks if not (isinstance(block, Paragraph) and not block.text)]


def write_model_card(
    model: TrainedModel, evaluation: Evaluation, out_dir: Path | str, version: str | None = None
) -> dict[str, Path]:
    """Write model_card.md, model_card.html and the PNG plots into `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = write_plots(model, evaluation, out_dir)
    blocks = build_card(model, evaluation, plots, version)
    title = blocks[0].text if isinstance(blocks[0], Heading) else "Model card"
    markdown_path = out_dir / "model_card.md"
    html_path = out_dir / "model_card.html"
    markdown_path.write_text(render_markdown(blocks))
    html_path.write_text(render_html(blocks, title, out_dir))
    return {"markdown": markdown_path, "html": html_path, **plots}


def _features_blocks(model: TrainedModel, evaluation: Evaluation) -> list[Block]:
    """The factors the model was given, in words, the ones it uses apart from the ones it does not."""
    used = (
        {item["feature"] for item in used_importance(evaluation)} if evaluation.importance else set(model.feature_cols)
    )
    words = [f"{feature_words(n)} ({n})" for n in model.feature_cols if n in used]
    blocks: list[Block] = [Paragraph("Used: " + ", ".join(words) + ".")]
    idle = [f"{feature_words(n)} ({n})" for n in model.feature_cols if n not in used]
    if idle:
        blocks.append(
            Paragraph("Given but not used (no effect on any of the evaluation rows sampled): " + ", ".join(idle) + ".")
        )
    categorical = [feature_words(n) for n in model.categorical_cols]
    blocks.append(Paragraph("Treated as categories: " + (", ".join(categorical) or "none") + "."))
    return blocks
