"""What each version of the store's schema added to the one before it (version 1 is
`gradvet.sweep.store_file.SCHEMA`).

A new store is created at the latest version in one transaction (the base schema, then every
step below). An older store is brought up to date by the first process that writes it
(`gradvet.sweep.store_file.migrate`, one IMMEDIATE transaction: all steps or none); a reader
never changes a file, so code that reads the tables added here treats their absence (a
version-1 store on a read-only medium, or one no new gradvet has written yet) as empty.
Every step only adds tables, so nothing stored before it changes meaning.

- 2: ``alerts`` (the `gradvet.Monitor` alerts of a run, one row each: step counted from 0,
  kind, layer, message, remedy, detector, since, value; written live while the run trains and
  replaced by the run's final list when it is saved) and ``progress`` (one row per run in
  flight: the latest heartbeat of `gradvet.train.heartbeat`, deleted when the run is saved).
"""

from __future__ import annotations

ALERT_COLUMNS = ("run_key", "step", "kind", "layer", "message", "remedy", "detector", "since", "value")
PROGRESS_COLUMNS = ("run_key", "step", "steps", "loss", "grad_norm", "layers", "updated")

# version -> (SQL statements, {table: required columns}) added by that version
MIGRATIONS: dict[int, tuple[str, dict[str, tuple[str, ...]]]] = {
    2: ("""
CREATE TABLE IF NOT EXISTS alerts (
    run_key TEXT NOT NULL REFERENCES runs(key),
    step INTEGER NOT NULL,
    kind TEXT NOT NULL,
    layer TEXT,
    message TEXT NOT NULL,
    remedy TEXT NOT NULL,
    detector TEXT NOT NULL,
    since INTEGER,
    value REAL
);
CREATE INDEX IF NOT EXISTS alerts_run ON alerts (run_key);
CREATE TABLE IF NOT EXISTS progress (
    run_key TEXT PRIMARY KEY REFERENCES runs(key),
    step INTEGER NOT NULL,
    steps INTEGER,
    loss REAL,
    grad_norm REAL,
    layers TEXT,
    updated REAL NOT NULL
);
""", {"alerts": ALERT_COLUMNS, "progress": PROGRESS_COLUMNS}),
}


def statements(after: int, upto: int) -> list[str]:
    """The SQL statements that take a store from version `after` to version `upto`, in order."""
    return [s.strip() for version in sorted(MIGRATIONS) if after < version <= upto
            for s in MIGRATIONS[version][0].split(";") if s.strip()]


def added_columns(upto: int) -> dict[str, tuple[str, ...]]:
    """{table: columns} of the tables the versions up to `upto` added."""
    out: dict[str, tuple[str, ...]] = {}
    for version in sorted(MIGRATIONS):
        if version <= upto:
            out.update(MIGRATIONS[version][1])
    return out
