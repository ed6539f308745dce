"""Errors in what riskstrat was given or asked to do, as opposed to errors in riskstrat itself.

A settings file with a wrong value, a batch the contracts reject, a mapping that cannot be used, a step run
before the one it needs: the message says what and where on one line, and the CLI prints just that line and
exits with code 2. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class DomainError(Exception):
    """Settings, files or data riskstrat cannot work with; the message is one line naming what and where."""


class NotReadyError(DomainError):
    """A step needs what an earlier step makes (a database, a loaded batch, a current model); the message names
    the step to run first."""


class DatabaseBusy(DomainError):
    """Another run holds the warehouse's write lock (DuckDB allows one writing process): the message says which
    process and since when."""
