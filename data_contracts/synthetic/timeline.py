"""Calendar, batch boundaries, random streams and pseudonymous ids shared by the generator's modules.

Dates are handled as int32 day numbers (days since 1970-01-01, Polars' physical Date) so every step is numpy.
The simulation runs in "periods": calendar months anchored on `end_date` (period k starts at end_date + k
months), so the outcome horizons [index, index + horizon_months) of both index dates (the evaluation index date
`horizon_months` before `end_date`, and `end_date` itself) are exactly `horizon_months` periods. Periods before
`end_date` are published; the `future_months` periods from `end_date` are the held-back future (at least
12, so a shorter horizon leaves the published data as they are), so nothing is published on `end_date` itself
or later.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

import numpy as np

from data_contracts.dates import add_months, day_number, day_to_date
from data_contracts.errors import DomainError

NULL_DAY = np.iinfo(np.int32).min  # sentinel for an empty date in int day arrays
MIN_FUTURE_MONTHS = 12  # the simulated, unpublished year after end_date (longer for a longer outcome horizon)

# Fixed stream names: each gets its own child of the seed, so changing how one table is drawn does not
# perturb the others. Append new names at the end to keep existing streams stable.
STREAM_NAMES: tuple[str, ...] = (
    "population",
    "conditions",
    "practices",
    "opt_outs",
    "latent",
    "hospital",
    "ae",
    "outpatient",
    "gp",
    "community",
    "prescriptions",
    "death",
    "social_care",
    "apc_detail",
    "ae_detail",
    "op_detail",
    "gp_detail",
    "community_detail",
    "rx_detail",
    "asc_detail",
    "truth",
    "dirty",
    "drift",
    "case_management",
)


def rng_streams(seed: int) -> dict[str, np.random.Generator]:
    """One PCG64 generator per named stream, each a child of `seed` (stable across runs and code changes)."""
    return {
        name: np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(i,))))
        for i, name in enumerate(STREAM_NAMES)
    }


def pseudonymous_ids(seed: int, count: int, salt: str = "person") -> np.ndarray:
    """16-hex-character keyed hashes (blake2b keyed by seed and salt): deterministic, not sequential."""
    key = f"riskstrat-synth:{seed}:{salt}".encode()[:64]
    ids = [hashlib.blake2b(i.to_bytes(8, "little"), digest_size=8, key=key).hexdigest() for i in range(count)]
    out = np.array(ids, dtype=object)
    if len(set(ids)) != count:  # 64-bit hashes: practically impossible, but a collision would merge people
        raise RuntimeError("pseudonymous id collision; use another seed")
    return out


@dataclass(frozen=True)
class Timeline:
    end_date: date
    history_years: int
    weekly_batches: int
    horizon_months: int  # the run's outcome horizon (`OutcomeSettings.horizon_months`)

    def __post_init__(self) -> None:
        if self.horizon_months > self.history_periods:
            raise DomainError(
                f"synth.history_years = {self.history_years} leaves no evaluation index date for an outcome horizon "
                f"of outcomes.horizon_months = {self.horizon_months}: generate at least "
                f"{-(-self.horizon_months // 12)} years of history"
            )

    @property
    def history_periods(self) -> int:
        return 12 * self.history_years

    @property
    def future_months(self) -> int:
        return max(MIN_FUTURE_MONTHS, self.horizon_months)

    @property
    def n_periods(self) -> int:
        return self.history_periods + self.future_months

    @property
    def period_starts(self) -> np.ndarray:
        """Day number of each period start, plus the end of the last period (length n_periods + 1)."""
        first = -self.history_periods
        return np.array(
            [day_number(add_months(self.end_date, k)) for k in range(first, self.future_months + 1)], dtype=np.int32
        )

    @property
    def end_day(self) -> int:
        """First unpublished day (end_date itself: see the module docstring)."""
        return day_number(self.end_date)

    @property
    def history_start_day(self) -> int:
        return int(self.period_starts[0])

    @property
    def eval_period(self) -> int:
        """Period index where the eval horizon starts (eval_index_date = end_date - horizon_months)."""
        return self.history_periods - self.horizon_months

    @property
    def score_period(self) -> int:
        return self.history_periods

    @property
    def eval_index_date(self) -> date:
        return add_months(self.end_date, -self.horizon_months)

    @property
    def score_index_date(self) -> date:
        return self.end_date

    @property
    def n_batches(self) -> int:
        return 1 + self.weekly_batches

    def extract_day(self, batch: int) -> int:
        """Last day covered by a batch: the history batch ends weekly_batches weeks before end_date."""
        return self.end_day - 7 * (self.weekly_batches - batch)

    def batch_ids(self) -> list[str]:
        ids = ["b0000_history"]
        for b in range(1, self.n_batches):
            ids.append(f"b{b:04d}_week_{day_to_date(self.extract_day(b)).isoformat()}")
        return ids

    def batch_of_day(self, days: np.ndarray) -> np.ndarray:
        """Batch index holding a row dated `days`; -1 when unpublished (on or after end_date, or empty)."""
        days = np.asarray(days, dtype=np.int64)
        first_weekly = self.extract_day(0)
        weekly = -((first_weekly - days) // 7)  # ceil((day - history extract) / 7)
        batch = np.where(days <= first_weekly, 0, weekly)
        return np.where((days >= self.end_day) | (days == NULL_DAY), -1, batch).astype(np.int16)
