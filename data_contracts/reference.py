"""Reference data shipped with riskstrat: code lists and unit costs, each with source and year."""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

REFERENCE_DIR = Path(__file__).parent / "reference"
REFERENCE_CURRENCY = "GBP"
"""Currency of the unit costs (`unit_costs.csv`, column `cost_gbp`) and of a batch that does not name one."""
CURRENCY_SYMBOLS: dict[str, str] = {"GBP": "£", "USD": "US$", "EUR": "€"}


def money_prefix(currency: str) -> str:
    """What goes before an amount in `currency` in words for people ("£", "US$"; else the ISO code and a space)."""
    return CURRENCY_SYMBOLS.get(currency, f"{currency} ")


@dataclass(frozen=True)
class CodeList:
    name: str
    source: str
    year: str
    codes: dict[str, str]
    group: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def accepted(self) -> set[str]:
        """Every value a file may carry: current codes and legacy aliases."""
        return set(self.codes) | set(self.aliases)

    def codes_in_group(self, *groups: str) -> list[str]:
        return sorted(code for code, g in self.group.items() if g in groups)


@cache
def codelists() -> dict[str, CodeList]:
    with open(REFERENCE_DIR / "codelists.toml", "rb") as fh:
        raw = tomllib.load(fh)
    return {
        name: CodeList(
            name=name,
            source=spec["source"],
            year=str(spec["year"]),
            codes=dict(spec["codes"]),
            group=dict(spec.get("group", {})),
            aliases=dict(spec.get("aliases", {})),
        )
        for name, spec in raw.items()
    }


def codelist(name: str) -> CodeList:
    return codelists()[name]


@dataclass(frozen=True)
class UnitCost:
    setting: str
    unit: str
    cost_gbp: float
    price_year: str
    source: str


@cache
def unit_costs() -> dict[str, UnitCost]:
    with open(REFERENCE_DIR / "unit_costs.csv", newline="") as fh:
        return {
            row["setting"]: UnitCost(
                setting=row["setting"],
                unit=row["unit"],
                cost_gbp=float(row["cost_gbp"]),
                price_year=row["price_year"],
                source=row["source"],
            )
            for row in csv.DictReader(fh)
        }


def unit_cost(setting: str) -> float:
    return unit_costs()[setting].cost_gbp


@cache
def _icd10_chapters() -> list[tuple[str, str, str]]:
    with open(REFERENCE_DIR / "icd10_chapters.csv", newline="") as fh:
        return [(row["first"], row["last"], row["title"]) for row in csv.DictReader(fh)]


@cache
def _icd10_categories() -> dict[str, str]:
    with open(REFERENCE_DIR / "icd10_categories.csv", newline="") as fh:
        return {row["code"]: row["title"] for row in csv.DictReader(fh)}


def icd10_words(code: str) -> str:
    """An ICD-10 code as a reader says it: "S72 Fracture of femur" from the 3-character category, else the code
    and its chapter ("Z99 (factors influencing health status ...)"), else the code as given."""
    category = code.strip().upper().replace(".", "")[:3]
    title = _icd10_categories().get(category)
    if title is not None:
        return f"{category} {title}"
    for first, last, chapter in _icd10_chapters():
        if first <= category <= last:
            return f"{category} ({chapter[:1].lower()}{chapter[1:]})"
    return code


@cache
def acsc_prefixes() -> dict[str, str]:
    """ICD-10 prefix -> chronic ambulatory care sensitive condition (acsc_icd10.csv)."""
    with open(REFERENCE_DIR / "acsc_icd10.csv", newline="") as fh:
        return {row["icd10_prefix"]: row["condition"] for row in csv.DictReader(fh)}


def acsc_condition(code: str | None) -> str | None:
    """The chronic ambulatory care sensitive condition a primary diagnosis belongs to, if any."""
    if not code:
        return None
    clean = code.strip().upper().replace(".", "")
    for length in (4, 3):
        condition = acsc_prefixes().get(clean[:length])
        if condition is not None:
            return condition
    return None
