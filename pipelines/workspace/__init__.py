"""The MDT workspace: a web application where each team reviews its own list, records its caseload decisions,
and every view is audited.

Where things live (DuckDB allows one writer, and a weekly run holds it for minutes, so the app never opens
the warehouse):

- **Published snapshot** (`HOME/workspace/runs/<run_id>/`, Parquet): what the app shows. Written by the
  score flow right after publishing (the same guarded frames), built in a temporary folder and renamed into
  place; then `HOME/workspace/current.json` is replaced atomically (`os.replace`) to name it. The app checks
  that pointer at most once a second and swaps its in-memory snapshot in one assignment: a request sees
  either the old run or the new one, never a mix (`snapshot.py`).
- **App state** (`HOME/workspace/state.sqlite`, SQLite in WAL mode): accounts, sessions, login failures, the
  hash-chained audit trail and the caseload decisions (`state.py`). Nothing here needs the warehouse lock.
- **Decisions reach the warehouse as a batch**: the weekly flow first exports the decisions recorded since
  the last export as a `caseload` contract batch into `HOME/batches/` (`caseload.py`), which ingest then
  validates and loads like any team's own delivery of that table. After ingest, people who opted out are
  erased from the app state's decisions too.

Identity (`security.py`): argon2 password hashes; a signed, HttpOnly, SameSite=Strict session cookie naming a
server-side session (so logout, disabling an account and idle expiry take effect at once); a CSRF token per
session on every form; login throttling per account and per client address; optionally a trusted
reverse-proxy identity header (off unless configured) so an organisation can put its own single sign-on in
front.
"""
