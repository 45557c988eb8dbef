"""The on-disk cache (gradvet.activations.cache) under faults: a cache is never a reason to fail.

A cache file holding null, a list, garbage, JSON nested too deep, a record of the wrong shape,
or something that is not a regular file (a FIFO, a directory) is ignored and rewritten. The
value returned is always the one computed (an independent, known record), and a good cache
is really used (the compute function is not called again).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from gradvet.activations import cache
from gradvet.activations.cache import DiskTable

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Record:
    gain: float
    kinks: list[float]


RIGHT = Record(0.25, [0.0, 1.5])
ACT = SimpleNamespace(cache_key="relu")  # DiskTable needs only the key
OTHER = {"gain": 9.0, "kinks": []}  # another activation's good record, which must survive a rewrite


def encode(record: Record) -> dict:
    return asdict(record)


def decode(data: dict) -> Record:
    kinks = data["kinks"]
    if not isinstance(kinks, list):
        raise TypeError("kinks must be a list")
    return Record(float(data["gain"]), [float(k) for k in kinks])


@pytest.fixture
def table(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADVET_CACHE_DIR", str(tmp_path))
    cache.clear_memory()
    yield DiskTable("test-records", (Path(__file__),))
    cache.clear_memory()


def get(table: DiskTable, calls: list[int]) -> Record:
    def compute(act) -> Record:
        calls.append(1)
        return Record(RIGHT.gain, list(RIGHT.kinks))

    return table.get(ACT, compute, encode, decode)


BAD_FILES = {
    "null": b"null",
    "a list": b"[1, 2]",
    "a string": b'"text"',
    "a number": b"3",
    "empty": b"",
    "garbage": b"\xff\xfe\x00 not json at all",
    "nested too deep": b"[" * 100_000 + b"]" * 100_000,
    "truncated": b'{"relu": {"gain": 0.25, "kin',
}

BAD_RECORDS = {
    "record null": None,
    "record a list": [0.25],
    "record a number": 0.25,
    "field missing": {"gain": 0.25},
    "field foreign": {"gain": 0.25, "kinks": [0.0, 1.5], "colour": "red"},
    "field of the wrong type": {"gain": 0.25, "kinks": 3},
    "field not a number": {"gain": "high", "kinks": []},
}


@pytest.mark.parametrize("content", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_cache_file_that_is_not_a_table_is_ignored_and_rewritten(table, content):
    table.path().write_bytes(content)
    calls: list[int] = []
    assert get(table, calls) == RIGHT and calls == [1]
    assert json.loads(table.path().read_text()) == {"relu": encode(RIGHT)}  # rewritten, whole
    cache.clear_memory()  # a new process: the rewritten file is used as it is
    assert get(table, calls) == RIGHT and calls == [1]


@pytest.mark.parametrize("record", BAD_RECORDS.values(), ids=BAD_RECORDS.keys())
def test_a_record_of_the_wrong_shape_is_computed_again(table, record):
    table.path().write_text(json.dumps({"relu": record, "other": OTHER}))
    calls: list[int] = []
    assert get(table, calls) == RIGHT and calls == [1]
    assert json.loads(table.path().read_text()) == {"relu": encode(RIGHT), "other": OTHER}
    cache.clear_memory()
    assert get(table, calls) == RIGHT and calls == [1]


def test_a_directory_at_the_cache_path_only_means_no_caching(table):
    table.path().mkdir()
    calls: list[int] = []
    assert get(table, calls) == RIGHT and calls == [1]
    cache.clear_memory()
    assert get(table, calls) == RIGHT and calls == [1, 1]
    assert table.path().is_dir()


FIFO_CHECK = """
import json, sys
from pathlib import Path
from types import SimpleNamespace
from gradvet.activations.cache import DiskTable
table = DiskTable("test-records", (Path(sys.argv[1]),))
assert table.path().is_fifo()
record = table.get(SimpleNamespace(cache_key="relu"), lambda act: {"gain": 0.25}, dict, dict)
print(json.dumps([record, table.path().is_file(), json.loads(table.path().read_text())]))
"""


def test_a_fifo_at_the_cache_path_never_hangs_and_is_replaced(table, tmp_path):
    """In a subprocess with a timeout: reading a FIFO would block for ever."""
    os.mkfifo(table.path())
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", FIFO_CHECK, __file__], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"gain": 0.25}, True, {"relu": {"gain": 0.25}}]


def test_a_good_cache_round_trips_the_real_properties_and_mean_field(table):
    """The schema check (a record must encode back to itself) accepts every record gradvet writes:
    read back in a new process (memory cleared), nothing is computed again."""
    from gradvet.activations import activation
    from gradvet.activations.properties import Properties, compute
    from gradvet.theory import _MEAN_FIELD, MeanField, _compute_mean_field

    for name in ("relu", "tanh", "elu"):
        act = activation(name)

        def refuse(_act, name=name):
            raise AssertionError(f"{name}: computed again although the cache holds it")

        first = cache.PROPERTIES.get(act, compute, Properties.to_cache, Properties.from_cache)
        field = _MEAN_FIELD.get(act, _compute_mean_field, MeanField.to_dict, lambda d: MeanField(**d))
        cache.clear_memory()
        assert cache.PROPERTIES.get(act, refuse, Properties.to_cache, Properties.from_cache) == first == compute(act)
        assert _MEAN_FIELD.get(act, refuse, MeanField.to_dict, lambda d: MeanField(**d)) == field


SHOW_RELU = """
import sys
from gradvet.cli import main
sys.argv = ["gradvet", "show", "relu", "--json"]
main()
"""


@pytest.mark.parametrize("content", [b"null", b"[1, 2]", b"\xff garbage"], ids=["null", "a list", "garbage"])
def test_gradvet_show_with_a_broken_cache_file(table, content):
    """`gradvet show relu --json` as typed, in a fresh process whose cache files all hold `content`."""
    from gradvet.theory import _MEAN_FIELD

    env = dict(os.environ, PYTHONPATH=str(ROOT))  # GRADVET_CACHE_DIR: the fixture's folder
    paths = [cache.PROPERTIES.path(), _MEAN_FIELD.path()]
    for path in paths:
        path.write_bytes(content)
    done = subprocess.run([sys.executable, "-c", SHOW_RELU], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["name"] == "relu"
    from gradvet.activations import activation

    key = activation("relu").cache_key
    for path in paths:
        assert key in json.loads(path.read_text())  # rewritten as a table of records
