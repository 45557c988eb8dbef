"""The README's "Early warning" section stays true: its snippet runs as printed and warns before the
divergence, and `gradvet.Monitor` / `gradvet.Alert` load lazily from `import gradvet`.

Oracles: the divergence step comes from replaying the snippet's own schedule without a monitor
(the first non-finite loss, by a plain loop), and the modules loaded from `sys.modules` of a fresh
interpreter.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("matplotlib", "scipy", "sklearn", "pandas", "sympy", "transformers", "lightning")


def _section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _blocks(section: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced block of a README section, in order."""
    return re.findall(r"```(\w*)\n(.*?)```", section, flags=re.S)


def _first_nonfinite_step(steps: int = 200) -> int | None:
    """The snippet's run without a monitor: the first step whose loss is not finite."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(512, 20), torch.randn(512, 1)
    for step in range(steps):
        optimizer.param_groups[0]["lr"] = 0.01 * 1.05**step
        loss = nn.functional.mse_loss(model(x), y)
        if not torch.isfinite(loss):
            return step
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return None


def test_the_readme_snippet_runs_prints_what_the_readme_shows_and_warns_before_the_divergence(capsys):
    blocks = _blocks(_section("Early warning"))
    code = next(body for lang, body in blocks if lang == "python")
    shown = next(body for lang, body in blocks if lang == "")
    namespace: dict = {}
    exec(compile(code, "README.md (Early warning)", "exec"), namespace)
    monitor = namespace["mon"]
    printed = capsys.readouterr().out.splitlines()
    assert printed == [str(a) for a in monitor.alerts]  # on_alert=print saw every alert, once
    head = re.compile(r"^step \d+: [a-z_]+(?: in \S+)?:")
    assert [head.match(line).group(0) for line in printed] == [head.match(line).group(0) for line in shown.splitlines()]
    exploding = [a for a in monitor.alerts if a.kind in ("exploding", "unstable")]
    assert exploding, printed
    diverged = _first_nonfinite_step()
    assert diverged is not None and exploding[0].step < diverged - 10
    assert f"Inf at step {diverged}" in _section("Early warning")  # the README's word for it
    assert exploding[0].remedy and exploding[0].message.endswith(".")


def test_every_alert_kind_and_detector_is_listed_in_the_readme():
    from gradvet.monitor import KINDS, default_detectors

    section = _section("Early warning")
    for kind in KINDS:
        assert f"`{kind}`" in section, kind
    for detector in default_detectors():
        assert f"| `{detector.name}` |" in section, detector.name


LAZY = """
import json, sys
import gradvet
bare = sorted(sys.modules)
monitor, alert = gradvet.Monitor, gradvet.Alert
from gradvet import Alert, Monitor
import gradvet.monitor
assert Monitor is gradvet.monitor.Monitor and Alert is gradvet.monitor.Alert
assert {"Monitor", "Alert"} <= set(gradvet.__all__) <= set(dir(gradvet))
print(json.dumps({"bare": bare, "used": sorted(sys.modules)}))
"""


def test_monitor_and_alert_load_on_first_use_and_bring_no_heavy_package(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", LAZY], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert "torch" not in seen["bare"] and "gradvet.monitor" not in seen["bare"]
    assert "gradvet.monitor" in seen["used"]
    heavy = sorted({m.split(".")[0] for m in seen["used"]} & set(HEAVY))
    assert heavy == []
