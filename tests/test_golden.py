"""The golden run: the same seeded pipeline gives the same scores, lists, model metrics and published files as
the recorded digest (`tests/golden/digest.json`). A change that alters behaviour on purpose regenerates the
digest (`python -m tests.golden.run --write`) and says why in its commit."""

from __future__ import annotations

import json
from pathlib import Path

from tests.golden.run import DIGEST_PATH, run_golden


def test_the_golden_run_reproduces_every_recorded_artifact(tmp_path: Path) -> None:
    golden = json.loads(DIGEST_PATH.read_text())
    result = run_golden(tmp_path)
    missing = sorted(golden.keys() - result.keys())
    extra = sorted(result.keys() - golden.keys())
    changed = sorted(k for k in golden.keys() & result.keys() if golden[k] != result[k])
    assert not (missing or extra or changed), {"missing": missing[:20], "extra": extra[:20], "changed": changed[:20]}
