"""Named transforms for source rules a declarative mapping cannot express.

A transform is a plain function `(rows, source) -> rows` over one source file's rows, all as text: it may only
add columns (each declared in `adds`), never add, remove or reorder rows, so every source row stays accounted
for (the importer checks this). Dropping rows is the mapping's job, where each drop states its reason. A mapping
names the transform that runs (`transform = "..."`) and then maps the added columns like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import polars as pl


class SourceFiles(Protocol):
    """The source folder, for transforms that need a second file (every value as text)."""

    def read(self, file_name: str) -> pl.DataFrame: ...

    def has(self, file_name: str) -> bool: ...


@dataclass(frozen=True)
class Transform:
    name: str
    function: Callable[[pl.DataFrame, SourceFiles], pl.DataFrame]
    adds: tuple[str, ...]
    description: str


def _registry() -> dict[str, Transform]:
    from data_contracts.sources import omop, synthea

    return {t.name: t for t in (*synthea.TRANSFORMS, *omop.TRANSFORMS)}


TRANSFORMS: dict[str, Transform] = _registry()
"""Every named transform, by name."""
