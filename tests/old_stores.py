"""Stores as an earlier gradvet wrote them, for the migration tests (test_monitor_engine, test_watch)."""

from __future__ import annotations

import json
import sqlite3

from gradvet.spec import RunSpec
from gradvet.sweep.store_file import SCHEMA


def v1_store(path, wal: bool = False) -> None:
    """A store as gradvet wrote it before schema version 2 (no alerts, no progress), with one run;
    `wal`: in WAL mode, as a store a sweep has written."""
    con = sqlite3.connect(path, isolation_level=None)
    if wal:
        con.execute("PRAGMA journal_mode=WAL")
    con.executescript(SCHEMA)
    con.executemany("INSERT INTO meta VALUES (?, ?)", [("schema", "gradvet-store"), ("version", "1")])
    spec = RunSpec(steps=3)
    con.execute("INSERT INTO runs (key, spec, label, status, metrics) VALUES (?, ?, ?, 'done', ?)",
                (spec.key, json.dumps(spec.to_dict()), spec.label(), json.dumps({"steps_done": 3})))
    con.close()
