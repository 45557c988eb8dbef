"""The report in a real browser (headless Debian chromium driven by Playwright): it loads with
no console error and no network request, every figure is drawn with a size, the explorer's
selector changes the plotted function, a screenshot is not blank, and a hostile SVG figure runs
no script and fetches nothing, yet shows.

Skipped where chromium or Playwright is missing, unless GRADVET_REQUIRE_BROWSER=1 (set by
.ci/run, which installs chromium), where their absence is a failure."""

from __future__ import annotations

import io
import json
import math
import os
import shutil

import pytest
import torch
from PIL import Image

from gradvet.checkup import checkup
from gradvet.data import load
from gradvet.models import mlp
from gradvet.report import write_report
from gradvet.spec import RunSpec
from gradvet.sweep import Store
from gradvet.train import run as train

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("GRADVET_REQUIRE_BROWSER") == "1"

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

if not REQUIRED and (CHROMIUM is None or sync_playwright is None):
    pytest.skip("headless chromium and playwright are needed (apt install chromium; pip install playwright)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    assert CHROMIUM is not None and sync_playwright is not None, "GRADVET_REQUIRE_BROWSER=1 but no chromium/playwright"
    out = tmp_path_factory.mktemp("browser")
    with Store(out / "runs.db") as store:
        for act in ("sigmoid", "relu"):
            store.save(train(RunSpec(activation=act, init="xavier", depth=4, width=16, steps=30, eval_every=0)))
    torch.manual_seed(0)
    data = load("digits")
    diagnosis, _ = checkup(mlp(data.n_features, data.n_classes, 5, 32, "tanh", "xavier"), data)
    record = {**diagnosis.to_dict(), "model": "tanh MLP", "data": "digits", "steps": 0}
    from gradvet import theory as T

    theory = {"kind": "theory", "activation": "tanh", "sw2": 1.5, "sb2": 0.05, "chi1": T.chi1("tanh", 1.5, 0.05),
              "depth": 10, "profile": T.predict_profile("tanh", 10, 1.5, 0.05),
              "phase_diagram": T.phase_diagram("tanh", [0.0, 0.05, 0.5, 1.0])}
    from gradvet import choose

    choice = choose(3, 16, candidates="relu,sigmoid", steps=30, seeds=1, budget=60).to_dict()
    return write_report(out / "report.html", sources=[out / "runs.db"], records=[record, theory, choice],
                        activations=["x*tanh(softplus(x))"])


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def open_page(browser, path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    seen = {"errors": [], "requests": []}
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, seen


def test_loads_without_errors_or_requests(browser, report):
    page, seen = open_page(browser, report)
    for button in page.locator("nav button").all():
        button.click()
    assert seen["errors"] == []
    assert seen["requests"] == [report.as_uri()]
    page.close()


def test_every_figure_is_drawn(browser, report):
    page, _ = open_page(browser, report)
    tabs = page.locator("nav button").all()
    assert [t.inner_text() for t in tabs][-1] == "Activation explorer"
    drawn = 0
    for tab in tabs:
        tab.click()
        target = tab.get_attribute("data-target")
        for figure in page.locator(f"section#{target} figure").all():
            box = figure.locator("svg").first.bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 80, (target, box)
            assert figure.locator("svg path, svg image").count() > 5  # something is drawn in it
            drawn += 1
    # runs: curves + (profile + heatmap) x 2 runs; diagnosis: profile + histograms; theory: profile + phase
    # diagram; choice: quality and gradient-ratio bars
    assert drawn == 11
    page.close()


def test_explorer_selector_changes_the_plot(browser, report):
    page, _ = open_page(browser, report)
    page.click("nav button[data-target='explorer']")
    path = page.locator("#explorer-f")
    relu = path.get_attribute("d")
    page.select_option("#explorer-pick", "sigmoid")
    sigmoid = path.get_attribute("d")
    assert relu and sigmoid and relu != sigmoid
    assert page.locator("#explorer-title").inner_text().startswith("sigmoid")
    # the drawn curve is the embedded data: sigmoid(0) = 0.5 at the middle of the x range
    data = json.loads(page.locator("#explorer-data").text_content())
    entry = next(a for a in data["activations"] if a["name"] == "sigmoid")
    assert entry["f"][len(entry["f"]) // 2] == 0.5
    # first point of the path: x = -6 at the left edge (40 px), y = sigmoid(-6) on the axis from -2.5 to 3.5
    x0, y0 = map(float, sigmoid.split(" L")[0].lstrip("M").split())
    assert x0 == pytest.approx(40.0, abs=0.06)
    assert y0 == pytest.approx(360 - 40 - (1 / (1 + math.exp(6)) + 2.5) / 6.0 * 280, abs=0.06)
    page.select_option("#explorer-pick", "x*tanh(softplus(x))")
    assert page.locator("#explorer-formula").inner_text() == "f(x) = x*tanh(softplus(x))"
    page.select_option("#explorer-compare", "tanh")
    assert page.locator("#explorer-f2").get_attribute("d")
    page.close()


def test_screenshot_is_not_blank(browser, report, tmp_path):
    page, _ = open_page(browser, report)
    for target in ("diagnosis", "choice", "explorer"):
        page.click(f"nav button[data-target='{target}']")
        png = page.screenshot(full_page=False)
        (tmp_path / f"{target}.png").write_bytes(png)
        image = Image.open(io.BytesIO(png)).convert("L")
        histogram = image.histogram()
        assert sum(1 for c in histogram if c > 50) > 20  # many grey levels: text, lines, figures
        assert max(histogram) < 0.97 * sum(histogram)  # not one flat colour
    page.close()


def test_hostile_svg_figure_runs_nothing_fetches_nothing_and_still_shows(browser, tmp_path):
    from hostile_results import HOSTILE_SVG, experiment_json

    folder = tmp_path / "results"
    (folder / "exp-hostile.svg").parent.mkdir()
    (folder / "exp-hostile.svg").write_text(HOSTILE_SVG)
    report = write_report(tmp_path / "report.html", sources=[experiment_json(folder, ["exp-hostile.svg"])])
    # control: the same SVG inlined as markup (what the report used to do) does run script in this browser
    inlined = tmp_path / "inlined.html"
    inlined.write_text(f"<!DOCTYPE html><html><body>{HOSTILE_SVG.split('?>', 1)[1]}</body></html>")
    for path, expect_harm in ((inlined, True), (report, False)):
        page, seen = open_page(browser, path)
        dialogs = []
        page.on("dialog", lambda d, dialogs=dialogs: (dialogs.append(d.message), d.dismiss()))
        page.reload()
        page.wait_for_load_state("load")
        page.wait_for_timeout(500)
        if expect_harm:
            assert dialogs and any(url.startswith("http://127.0.0.1:9/") for url in seen["requests"])
        else:
            assert dialogs == []
            assert set(seen["requests"]) == {report.as_uri()}
            image = page.locator("figure[data-figure='exp-hostile'] img")
            assert image.evaluate("img => img.complete && img.naturalWidth") == 240  # decoded and drawn
            box = image.bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 50
            png = Image.open(io.BytesIO(image.screenshot())).convert("RGB")
            assert png.getpixel((png.width // 2, png.height - 5)) == (0, 192, 0)  # the green rectangle
        page.close()


def test_the_alerts_of_a_monitored_run_are_drawn_on_its_learning_curve(browser, tmp_path):
    with Store(tmp_path / "runs.db") as store:
        store.save(train(RunSpec(init="normal", depth=4, width=16, steps=10, eval_every=0, monitor=True)))
        (alerts,) = store.alerts().values()
    path = write_report(tmp_path / "alerts.html", sources=[tmp_path / "runs.db"])
    page, seen = open_page(browser, path)
    marks = page.locator('figure[data-figure="learning-curves"] g[id^="alert-marks"] path')
    assert marks.count() == len(alerts) > 0
    box = marks.first.bounding_box()
    assert box is not None and box["width"] > 2 and box["height"] > 2  # a visible triangle
    assert seen["errors"] == []
    page.close()
