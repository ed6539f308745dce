"""Matching, balance, and the three estimates of the effect of case management, with their intervals.

- Naive before-and-after: the people taken on, follow-up rate over baseline rate, minus 1. It contains the
  regression to the mean of people taken on at a peak, and is labelled so.
- Matched difference-in-differences: each person taken on is matched at their start date to up to k people of
  the risk set of that day (exactly on team, sex, age band and the bands of emergency admissions in 3 and 12
  months; nearest on the case-finding score within a caliper; without replacement within a day). The estimate
  is the ratio of the follow-up/baseline rate ratios of the people taken on and of their comparisons (each
  comparison weighted 1/k of its set), minus 1: the relative change the service made. Intervals: percentile
  bootstrap over matched sets (a set is resampled whole, which respects the matching), seeded.
- Randomised at the margin: the people who entered a draw (their first), offered now against offered later:
  the intention-to-treat ratio of follow-up/baseline rate ratios minus 1, and divided by the difference in the
  share taken on, the effect of being case-managed (Wald). Bootstrap over people within each draw.

Rates are events per person-year at risk; the follow-up ends at death.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import log
from statistics import NormalDist

import numpy as np
import polars as pl

from data_contracts.evaluation_plan import EvaluationPlan, evaluation_outcomes
from models.impact.cohort import COVARIATES

_NORMAL = NormalDist()
FEW_EVENTS = 5  # an estimate from fewer events after the start, in either group, is marked not informative
SET_SUMS = ("t_post", "t_years_post", "t_pre", "t_years_pre", "c_post", "c_years_post", "c_pre", "c_years_pre")


@dataclass
class Estimate:
    method: str
    outcome: str
    estimate: float  # relative change (-0.2 = 20% fewer)
    lo: float
    hi: float
    people: int  # people taken on (or offered, randomised) in the estimate
    comparisons: int
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "outcome": self.outcome,
            "estimate": self.estimate,
            "lo": self.lo,
            "hi": self.hi,
            "people": self.people,
            "comparisons": self.comparisons,
            "note": self.note,
            **self.extra,
        }


# ---------------------------------------------------------------------------------------------------- matching


def match(risk_sets: pl.DataFrame, plan: EvaluationPlan) -> pl.DataFrame:
    """Matched sets from the risk sets of every start date (`risk_set` frames stacked): one row per member,
    set_id, person_id, index_date, treated, weight (1 for the person taken on, 1/k for each of k comparisons),
    distance, score and score_gap (the treated person's score minus the member's). People taken on without any
    comparison within the caliper are left out (counted by the caller)."""
    m = plan.matching
    exact = list(m.exact)
    rows: list[dict[str, object]] = []
    set_id = 0
    for (day,), day_set in risk_sets.group_by(["index_date"], maintain_order=True):
        sd = float(day_set["score"].std() or 0.0)
        caliper = m.caliper_sd * sd if sd > 0 else 1e-9
        treated = day_set.filter(pl.col("taken_on")).sort(["score", "person_id"], descending=[True, False])
        pool = day_set.filter(~pl.col("taken_on"))
        used: set[str] = set()
        pairs = treated.select("person_id", *exact, "score").join(
            pool.select(pl.col("person_id").alias("control_id"), *exact, pl.col("score").alias("control_score")),
            on=exact,
            how="inner",
        )
        pairs = pairs.with_columns((pl.col("score") - pl.col("control_score")).abs().alias("distance")).filter(
            pl.col("distance") <= caliper
        )
        candidates = {
            key[0]: frame.sort(["distance", "control_id"])
            for key, frame in pairs.group_by(["person_id"], maintain_order=True)
        }
        for person in treated["person_id"]:
            frame = candidates.get(person)
            if frame is None:
                continue
            chosen = [c for c in frame["control_id"] if c not in used][: m.controls_per_person]
            if not chosen:
                continue
            used.update(chosen)
            distance = dict(zip(frame["control_id"], frame["distance"], strict=True))
            gap = dict(zip(frame["control_id"], frame["control_score"], strict=True))
            score = float(treated.filter(pl.col("person_id") == person)["score"][0])
            rows.append(
                {
                    "set_id": set_id,
                    "person_id": person,
                    "index_date": day,
                    "treated": True,
                    "weight": 1.0,
                    "distance": 0.0,
                    "score": score,
                    "score_gap": 0.0,
                }
            )
            rows += [
                {
                    "set_id": set_id,
                    "person_id": c,
                    "index_date": day,
                    "treated": False,
                    "weight": 1.0 / len(chosen),
                    "distance": distance[c],
                    "score": gap[c],
                    "score_gap": score - gap[c],
                }
                for c in chosen
            ]
            set_id += 1
    schema = {
        "set_id": pl.Int64,
        "person_id": pl.String,
        "index_date": pl.Date,
        "treated": pl.Boolean,
        "weight": pl.Float64,
        "distance": pl.Float64,
        "score": pl.Float64,
        "score_gap": pl.Float64,  # the treated person's score minus this member's (0 for the treated)
    }
    return pl.DataFrame(rows, schema=schema)


def balance(risk_sets: pl.DataFrame, matched: pl.DataFrame, threshold: float) -> pl.DataFrame:
    """Standardised differences (taken on minus comparisons, over the pooled sd before matching) of each
    covariate, before matching (against everyone in the risk sets) and after (against the weighted comparisons)."""
    treated = risk_sets.filter(pl.col("taken_on"))
    pool = risk_sets.filter(~pl.col("taken_on"))
    after = matched.join(risk_sets.drop("taken_on"), on=["person_id", "index_date"], how="left")
    after_t, after_c = after.filter(pl.col("treated")), after.filter(~pl.col("treated"))
    rows = []
    for cov in COVARIATES:
        t = treated[cov].cast(pl.Float64).to_numpy()
        c = pool[cov].cast(pl.Float64).to_numpy()
        pooled_sd = float(np.sqrt((np.var(t) + np.var(c)) / 2)) if len(t) and len(c) else 0.0
        at = after_t[cov].cast(pl.Float64).to_numpy()
        ac = after_c[cov].cast(pl.Float64).to_numpy()
        w = after_c["weight"].to_numpy()
        mean_ac = float(np.average(ac, weights=w)) if len(ac) else float("nan")

        before_smd = _smd(float(t.mean()), float(c.mean()), pooled_sd) if len(t) and len(c) else float("nan")
        after_smd = _smd(float(at.mean()), mean_ac, pooled_sd) if len(at) and len(ac) else float("nan")
        rows.append(
            {
                "covariate": cov,
                "mean_taken_on": float(t.mean()) if len(t) else float("nan"),
                "mean_eligible": float(c.mean()) if len(c) else float("nan"),
                "mean_matched": mean_ac,
                "smd_before": before_smd,
                "smd_after": after_smd,
                "balanced": bool(abs(after_smd) < threshold) if after_smd == after_smd else False,
            }
        )
    return pl.DataFrame(rows)


def _smd(a: float, b: float, sd: float) -> float:
    return (a - b) / sd if sd > 0 else 0.0


# ---------------------------------------------------------------------------------------------------- estimates


def _interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(draws, [tail, 100 - tail])
    return float(lo), float(hi)


def _ratio(post: np.ndarray, years_post: np.ndarray, pre: np.ndarray, years_pre: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return (post / years_post) / (pre / years_pre)


def _resample(n: int, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """(replicates, n) counts of each unit in a bootstrap resample of n units."""
    return rng.multinomial(n, np.full(n, 1 / n), size=replicates).astype(np.float64)


def set_sums(matched: pl.DataFrame, outcomes: pl.DataFrame, outcome: str) -> pl.DataFrame:
    """Per matched set: the treated and weighted comparison sums of the outcome and years, before and after."""
    kind = evaluation_outcomes()[outcome].kind
    post = pl.col(f"{outcome}_post")
    if kind == "event":  # whether it happens in follow-up; not a rate: years count 1 each
        value_post, value_pre = post.clip(upper_bound=1), pl.lit(1.0)
        years_post, years_pre = pl.lit(1.0), pl.lit(1.0)
    else:
        value_post, value_pre = post, pl.col(f"{outcome}_pre")
        years_post, years_pre = pl.col("years_post"), pl.col("years_pre")
    members = matched.join(outcomes, on=["person_id", "index_date"], how="left").with_columns(
        value_post.alias("_post"), value_pre.alias("_pre"), years_post.alias("_yp"), years_pre.alias("_yb")
    )
    # Bias correction for the score gap a caliper leaves (Abadie and Imbens 2011): each comparison's follow-up
    # value is moved to the treated person's score along a log-linear (Poisson) fit of the follow-up value on
    # the score among the comparisons. The baseline is not moved: it is matched exactly (emergency bands).
    comparisons = members.filter(~pl.col("treated"))
    slope = poisson_slope(
        comparisons["score"].to_numpy(), comparisons["_post"].to_numpy(), comparisons["_yp"].to_numpy()
    )
    members = members.with_columns(pl.col("_post") * (pl.lit(slope) * pl.col("score_gap")).exp())
    w = pl.col("weight")
    t, c = pl.col("treated"), ~pl.col("treated")
    return (
        members.group_by("set_id")
        .agg(
            (pl.col("_post") * w).filter(t).sum().alias("t_post"),
            (pl.col("_yp") * w).filter(t).sum().alias("t_years_post"),
            (pl.col("_pre") * w).filter(t).sum().alias("t_pre"),
            (pl.col("_yb") * w).filter(t).sum().alias("t_years_pre"),
            (pl.col("_post") * w).filter(c).sum().alias("c_post"),
            (pl.col("_yp") * w).filter(c).sum().alias("c_years_post"),
            (pl.col("_pre") * w).filter(c).sum().alias("c_pre"),
            (pl.col("_yb") * w).filter(c).sum().alias("c_years_pre"),
        )
        .sort("set_id")
    )


def poisson_slope(score: np.ndarray, value: np.ndarray, years: np.ndarray, iterations: int = 25) -> float:
    """Slope b of log E[value] = a + b x score + log(years) (Newton-Raphson): how the value changes with the
    score; 0 when the fit is not possible (no spread of scores or no events)."""
    keep = years > 0
    x, y, offset = score[keep], value[keep], np.log(years[keep])
    if len(x) < 3 or np.ptp(x) == 0 or y.sum() <= 0:
        return 0.0
    beta = np.array([np.log(y.sum() / years[keep].sum()), 0.0])
    design = np.column_stack([np.ones_like(x), x])
    for _ in range(iterations):
        mu = np.exp(design @ beta + offset)
        step = np.linalg.solve(design.T @ (design * mu[:, None]) + 1e-9 * np.eye(2), design.T @ (y - mu))
        beta = beta + step
        if np.abs(step).max() < 1e-10:
            break
    return float(beta[1]) if np.isfinite(beta[1]) else 0.0


def naive_before_after(sums: pl.DataFrame, outcome: str, plan: EvaluationPlan) -> Estimate:
    a = sums.select(SET_SUMS[:4]).to_numpy().T  # the people taken on only
    rng = np.random.default_rng(plan.analysis.seed)
    counts = _resample(sums.height, plan.analysis.bootstrap_replicates, rng)
    point = float(_ratio(*a.sum(axis=1))) - 1
    boot = _ratio(*(counts @ a.T).T) - 1
    lo, hi = _interval(boot, plan.analysis.confidence)
    note = "before and after on the people taken on: contains their regression to the mean, not an effect"
    return Estimate("naive_before_after", outcome, point, lo, hi, sums.height, 0, note)


def matched_did(sums: pl.DataFrame, outcome: str, plan: EvaluationPlan, comparisons: int) -> Estimate:
    """Relative difference-in-differences (ratio of rate ratios minus 1; for an event, the risk ratio minus 1)."""
    a = sums.select(SET_SUMS).to_numpy().T
    rng = np.random.default_rng(plan.analysis.seed + 1)
    counts = _resample(sums.height, plan.analysis.bootstrap_replicates, rng)

    def effect(x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return _ratio(*x[:4]) / _ratio(*x[4:]) - 1

    point = float(effect(a.sum(axis=1)))
    boot = effect((counts @ a.T).T)
    lo, hi = _interval(boot, plan.analysis.confidence)
    totals = a.sum(axis=1)
    kind = evaluation_outcomes()[outcome].kind
    few = kind != "sum" and min(totals[0], totals[4]) < FEW_EVENTS
    note = f"fewer than {FEW_EVENTS} events after the start in a group: not informative" if few else ""
    extra = {
        "rate_taken_on_before": float(totals[2] / totals[3]) if totals[3] else float("nan"),
        "rate_taken_on_after": float(totals[0] / totals[1]) if totals[1] else float("nan"),
        "rate_comparison_before": float(totals[6] / totals[7]) if totals[7] else float("nan"),
        "rate_comparison_after": float(totals[4] / totals[5]) if totals[5] else float("nan"),
    }
    return Estimate("matched_did", outcome, point, lo, hi, sums.height, comparisons, note, extra)


def randomised(
    draws: pl.DataFrame, outcomes: pl.DataFrame, taken_on: pl.DataFrame, outcome: str, plan: EvaluationPlan
) -> Estimate | None:
    """The draw at the margin: offered now against offered later (each person's first draw).

    draws: person_id, team_id, index_date (the draw date), offered. taken_on: person_id, start_date."""
    if draws.height == 0 or draws["offered"].n_unique() < 2:
        return None
    follow = draws.join(taken_on, on="person_id", how="left").with_columns(
        (
            pl.col("start_date").is_not_null()
            & (pl.col("start_date") >= pl.col("index_date"))
            & (pl.col("start_date") < pl.col("index_date").dt.offset_by(f"{plan.follow_up_months}mo"))
        ).alias("took")
    )
    rows = follow.join(outcomes, on=["person_id", "index_date"], how="left").with_columns(
        pl.col("offered").cast(pl.Float64).alias("o")
    )
    post, pre = f"{outcome}_post", f"{outcome}_pre"
    cols = [
        pl.col(post) * pl.col("o"),
        pl.col("years_post") * pl.col("o"),
        pl.col(pre) * pl.col("o"),
        pl.col("years_pre") * pl.col("o"),
        pl.col(post) * (1 - pl.col("o")),
        pl.col("years_post") * (1 - pl.col("o")),
        pl.col(pre) * (1 - pl.col("o")),
        pl.col("years_pre") * (1 - pl.col("o")),
        pl.col("took").cast(pl.Float64) * pl.col("o"),
        pl.col("o"),
        pl.col("took").cast(pl.Float64) * (1 - pl.col("o")),
        1 - pl.col("o"),
    ]
    a = rows.select(c.alias(f"_{i}") for i, c in enumerate(cols)).to_numpy().T
    strata = rows.select(pl.struct("team_id", "index_date").rank("dense") - 1).to_series().to_numpy()

    def effect(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(divide="ignore", invalid="ignore"):
            itt = _ratio(*x[:4]) / _ratio(*x[4:8]) - 1
            uptake = x[8] / x[9] - x[10] / x[11]
            return itt, itt / uptake

    itt, cace = effect(a.sum(axis=1))
    rng = np.random.default_rng(plan.analysis.seed + 2)
    boot = np.zeros((plan.analysis.bootstrap_replicates, a.shape[0]))
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        counts = _resample(len(idx), plan.analysis.bootstrap_replicates, rng)
        boot += counts @ a[:, idx].T
    boot_itt, boot_cace = effect(boot.T)
    lo, hi = _interval(boot_cace, plan.analysis.confidence)
    itt_lo, itt_hi = _interval(boot_itt, plan.analysis.confidence)
    totals = a.sum(axis=1)
    offered = int(totals[9])
    uptake_offered, uptake_not_offered = float(totals[8] / totals[9]), float(totals[10] / totals[11])
    power, needed = _draw_power(
        rows.filter(pl.col("offered").not_()),
        post,
        offered,
        rows.height - offered,
        uptake_offered - uptake_not_offered,
        plan,
    )
    note = (
        "offered now vs offered after the follow-up, by a seeded draw; the effect of being case-managed "
        "(intention to treat divided by the difference in the share taken on)"
    )
    if power < plan.power.power:
        # The Wald ratio of a small draw is skewed and its interval wide: say so beside the figure, as the plan's
        # power calculation would have for the matched comparison.
        note += (
            f". Underpowered: {power:.0%} power for a {plan.power.minimum_effect:.0%} effect with {offered:,} people "
            f"offered; about {needed:,.0f} offered (as many not offered) would give {plan.power.power:.0%}"
        )
    return Estimate(
        "randomised_margin",
        outcome,
        float(cace),
        lo,
        hi,
        offered,
        rows.height - offered,
        note,
        {
            "itt": float(itt),
            "itt_lo": itt_lo,
            "itt_hi": itt_hi,
            "uptake_offered": uptake_offered,
            "uptake_not_offered": uptake_not_offered,
            "power": power,
            "people_offered_needed": needed,
        },
    )


def _draw_power(
    not_offered: pl.DataFrame, post: str, offered: int, others: int, uptake_difference: float, plan: EvaluationPlan
) -> tuple[float, float]:
    """The power of the draw and the people offered it would need, for the plan's minimum effect diluted by the
    difference in uptake (intention to treat), from the rate and overdispersion of the people not offered."""
    years = float(not_offered["years_post"].sum())
    counts = not_offered[post].fill_null(0.0)
    if years <= 0 or counts.len() < 2 or offered <= 0 or others <= 0:
        return 0.0, float("inf")
    rate = float(counts.sum()) / years
    mean = float(counts.mean() or 0.0)
    dispersion = float(counts.var() or 0.0) / mean if mean > 0 else 1.0
    diluted = plan.power.minimum_effect * max(uptake_difference, 0.0)
    ratio = others / offered
    return (
        power_with(offered, rate, dispersion, plan, effect=diluted, ratio=ratio),
        people_needed(rate, dispersion, plan, effect=diluted, ratio=ratio),
    )


# ---------------------------------------------------------------------------------------------------- power


def people_needed(
    rate: float, dispersion: float, plan: EvaluationPlan, effect: float | None = None, ratio: float | None = None
) -> float:
    """People taken on needed to detect the plan's minimum relative effect on a count (Poisson, overdispersed by
    `dispersion` = variance / mean, k comparisons each): n = (z_a + z_b)^2 phi (1/(1-d) + 1/k) / (lambda T
    ln(1-d)^2), from the variance of a log rate ratio. `effect` (default the plan's minimum effect) and `ratio`
    (k, default the plan's controls per person) serve the randomised comparison: there d is the effect diluted
    by the difference in uptake and k the people not offered per person offered."""
    z = _NORMAL.inv_cdf(1 - plan.power.alpha / 2) + _NORMAL.inv_cdf(plan.power.power)
    d, k = _effect_and_ratio(plan, effect, ratio)
    expected = rate * plan.follow_up_months / 12
    if expected <= 0 or d <= 0:
        return float("inf")
    return float(z**2 * max(dispersion, 1.0) * (1 / (1 - d) + 1 / k) / (expected * log(1 - d) ** 2))


def power_with(
    people: int,
    rate: float,
    dispersion: float,
    plan: EvaluationPlan,
    effect: float | None = None,
    ratio: float | None = None,
) -> float:
    """The power of the plan's test with `people` taken on (same model and arguments as `people_needed`)."""
    d, k = _effect_and_ratio(plan, effect, ratio)
    expected = rate * plan.follow_up_months / 12
    if people <= 0 or expected <= 0 or d <= 0:
        return 0.0
    se = np.sqrt(max(dispersion, 1.0) * (1 / (1 - d) + 1 / k) / (people * expected))
    return float(_NORMAL.cdf(abs(log(1 - d)) / se - _NORMAL.inv_cdf(1 - plan.power.alpha / 2)))


def _effect_and_ratio(plan: EvaluationPlan, effect: float | None, ratio: float | None) -> tuple[float, float]:
    d = plan.power.minimum_effect if effect is None else min(effect, 0.999)
    k = plan.matching.controls_per_person if ratio is None else ratio
    return d, max(k, 1e-9)
