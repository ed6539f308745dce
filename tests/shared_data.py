"""Where the shared external sample data (Synthea, OMOP) is: `../shared/data` beside the checkout, or beside the
folder holding it (a worktree under `wt/`). Tests that read it are skipped when it is absent."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data(name: str) -> Path:
    """`shared/data/<name>` next to the repository (or next to its parent folder); the first candidate if neither."""
    candidates = [REPO_ROOT.parent / "shared" / "data" / name, REPO_ROOT.parent.parent / "shared" / "data" / name]
    return next((c for c in candidates if c.is_dir()), candidates[0])
