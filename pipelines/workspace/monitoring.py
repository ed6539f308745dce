"""The monitoring page's data: the weekly run's copy of the stored monitoring history, for the workspace.

The app never opens the DuckDB warehouse (one writer, held by a weekly run for minutes), so the monitor step
writes what the weekly runs stored (`pipelines.publish.monitoring.MonitoringHistory`: drift, performance, alerts
and data-quality checks, aggregates only) to `HOME/workspace/monitoring.json`, replaced atomically. The app reads
it when it changes and draws the page with the same code as the HTML report.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from pathlib import Path

import polars as pl

from models.settings import MonitoringSettings
from pipelines.publish.monitoring import MonitoringHistory, MonitoringView, monitoring_view

log = logging.getLogger("riskstrat.workspace")

HISTORY_FILE = "monitoring.json"


def write_history(workspace_dir: Path, history: MonitoringHistory) -> Path:
    """Replace the workspace's copy of the monitoring history (readers see the old file or the new one)."""
    workspace_dir = Path(workspace_dir)
    workspace_dir.mkdir(parents=True, exist_ok=True)
    temporary = workspace_dir / f".{HISTORY_FILE}.{uuid.uuid4().hex[:8]}"
    with open(temporary, "w", encoding="utf-8") as fh:
        fh.write(history.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temporary, workspace_dir / HISTORY_FILE)
    return workspace_dir / HISTORY_FILE


class MonitoringReader:
    """The page's view of the newest history, rebuilt only when the file changes (a weekly run replaced it)."""

    def __init__(self, workspace_dir: Path, settings: MonitoringSettings) -> None:
        self.path = Path(workspace_dir) / HISTORY_FILE
        self.settings = settings
        self._key: tuple[int, int, int] | None = None
        self._view: MonitoringView | None = None
        self._lock = threading.Lock()

    def current(self) -> MonitoringView | None:
        """None until a weekly run has been monitored."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # a new file (os.replace) is a new inode
        with self._lock:
            if key != self._key:
                try:
                    history = MonitoringHistory.from_json(self.path.read_text(encoding="utf-8"))
                    self._view = monitoring_view(history, self.settings) if history.weeks else None
                except (OSError, ValueError, KeyError, pl.exceptions.PolarsError) as exc:
                    log.warning("%s could not be read (%s): still showing what was read before", self.path, exc)
                self._key = key
            return self._view
