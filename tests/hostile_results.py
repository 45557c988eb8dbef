"""What a hostile or damaged results folder can hold where gradvet's own results go: an SVG that
tries to run script and fetch from the network, a file outside the folder it tries to pull in,
and an experiment JSON naming them. Shared by test_report.py and test_report_browser.py."""

from __future__ import annotations

import json
from pathlib import Path

# Each line tries something a page must never let an SVG file do: run script (script element, onload,
# javascript: URL in a frame), fetch (CSS @import, an external image). The green rectangle is what
# a safe page still shows.
HOSTILE_SVG = """<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="240" height="120"
     onload="alert('onload')">
<script>alert('script')</script>
<style>@import url("http://127.0.0.1:9/style.css");</style>
<rect id="safe-drawing" x="0" y="0" width="240" height="120" fill="#00c000"/>
<image href="http://127.0.0.1:9/pixel.png" x="0" y="0" width="10" height="10"/>
<foreignObject x="0" y="0" width="120" height="60">
  <iframe xmlns="http://www.w3.org/1999/xhtml" src="javascript:alert('iframe')"></iframe>
</foreignObject>
</svg>
"""
SECRET = "gradvet-secret-outside-the-folder"
SECRET_SVG = f'<svg xmlns="http://www.w3.org/2000/svg"><text x="0" y="10">{SECRET}</text></svg>\n'


def experiment_json(folder: Path, figures: list, name: str = "exp", **fields) -> Path:
    """folder/NAME.json as an experiment writes it (one table, `figures`, a result), with `fields` on top."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {"experiment": name, "data": "digits", "seeds": 1, "quick": True,
              "tables": [{"title": "t", "columns": ["activation", "accuracy"], "rows": [["relu", 0.9]], "note": ""}],
              "figures": figures, "result": {"answer": 42}, "runs_trained": 0, "runs_reused": 0, **fields}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(record))
    return path
