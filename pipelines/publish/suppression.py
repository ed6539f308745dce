"""Small-number suppression, the published-statistics rule for every aggregate a commissioner sees."""

from __future__ import annotations

import math


def suppress(count: int) -> str:
    """0 stays 0, 1-7 become "*", the rest round to the nearest 5."""
    if count < 0:
        raise ValueError("a count cannot be negative")
    if count == 0:
        return "0"
    if count <= 7:
        return "*"
    return str(round5(count))


def suppress_expected(people: int, expected: float) -> str:
    """Expected events follow the people count of their cell: hidden when 1-7 people, else rounded to 5."""
    if people == 0:
        return "0"
    if people <= 7:
        return "*"
    return str(round5(expected))


def round5(x: float) -> int:
    # Half up, not banker's rounding: 12.5 expected events publish as 15.
    return math.floor(x / 5 + 0.5) * 5
