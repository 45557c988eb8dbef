"""The activation explorer: every catalog activation (and any user formula) with f and f'
sampled on [-6, 6], its computed properties, its mean-field numbers and its pros and cons,
embedded as JSON and drawn in the page by plain JavaScript (a select picks the activation,
a second one overlays another for comparison)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable

import torch

from gradvet.activations import Activation, activation, catalog
from gradvet.report.page import Section, esc

X_RANGE = (-6.0, 6.0)
POINTS = 241


def _rounded(values) -> list[float | None]:
    return [float(f"{v:.5g}") if math.isfinite(v) else None for v in values]


def entry(act: Activation) -> dict:
    """What the explorer shows of one activation."""
    from gradvet.theory import KIND_TEXT, mean_field

    x = torch.linspace(*X_RANGE, POINTS, dtype=torch.float64)
    with torch.no_grad():
        f, g = act.fn(x).tolist(), act.grad(x).tolist()
    p, mf = act.properties, mean_field(act)
    properties = {
        "output range": str(p.output_range), "monotonic": "yes" if p.monotonic else "no",
        "smoothness": p.smoothness, "f(0), f'(0)": f"{p.f0:.6g}, {p.fprime0:.6g}",
        "max |f'|": f"{p.max_grad:.6g} at x = {p.max_grad_at:.6g}", "E[f(z)]": f"{p.mean_gauss:.6g}",
        "E[f'(z)^2]": f"{p.grad_sq_gauss:.6g}", "saturates": p.saturation, "dead region": p.dead_text(),
        "cost (x ReLU)": "-" if p.cost is None else f"{p.cost:.3g}",
    }
    theory = {
        "chi1 at He init (sw2 = 2)": f"{mf.chi1_he:.6g} {KIND_TEXT[mf.chi1_he_kind]}",
        "chi1 at Xavier init (sw2 = 1)": f"{mf.chi1_xavier:.6g} {KIND_TEXT[mf.chi1_xavier_kind]}",
        "edge of chaos (sb2 = 0)": "none" if mf.critical_sw2 is None
        else f"sw2 = {mf.critical_sw2:.6g}, {KIND_TEXT[mf.critical_sw2_kind]}",
    }
    return {"name": act.name, "label": act.label(), "family": act.family, "formula": act.formula,
            "derivative": act.derivative_formula, "f": _rounded(f), "g": _rounded(g), "properties": properties,
            "theory": theory, "pros": list(act.pros), "cons": list(act.cons),
            "source": f"{act.paper} ({act.year})" if act.year else (act.paper or act.source)}


def explorer_data(extra: Iterable[str | Activation] = ()) -> dict:
    acts = list(catalog()) + [activation(a) for a in extra]
    seen, entries = set(), []
    for act in acts:
        key = act.label()
        if key not in seen:
            seen.add(key)
            entries.append(entry(act))
    return {"x": [X_RANGE[0] + i * (X_RANGE[1] - X_RANGE[0]) / (POINTS - 1) for i in range(POINTS)],
            "activations": entries}


SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById('explorer-data').textContent);
  var acts = data.activations, xs = data.x;
  var pick = document.getElementById('explorer-pick'), other = document.getElementById('explorer-compare');
  var W = 640, H = 360, M = 40, ymin = -2.5, ymax = 3.5;
  function px(x) { return M + (x - xs[0]) / (xs[xs.length - 1] - xs[0]) * (W - 2 * M); }
  function py(y) { return H - M - (y - ymin) / (ymax - ymin) * (H - 2 * M); }
  function path(values) {
    var d = '', pen = false;
    for (var i = 0; i < xs.length; i++) {
      var v = values[i];
      if (v === null || v < ymin - 50 || v > ymax + 50) { pen = false; continue; }
      v = Math.max(ymin - 1, Math.min(ymax + 1, v));
      d += (pen ? 'L' : 'M') + px(xs[i]).toFixed(1) + ' ' + py(v).toFixed(1) + ' ';
      pen = true;
    }
    return d.trim();
  }
  function find(name) { for (var i = 0; i < acts.length; i++) { if (acts[i].label === name) return acts[i]; } return null; }
  function rows(table, obj) {
    table.innerHTML = '';
    Object.keys(obj).forEach(function (k) {
      var tr = document.createElement('tr'), th = document.createElement('th'), td = document.createElement('td');
      th.textContent = k; td.textContent = obj[k]; tr.appendChild(th); tr.appendChild(td); table.appendChild(tr);
    });
  }
  function list(el, items) {
    el.innerHTML = '';
    items.forEach(function (t) { var li = document.createElement('li'); li.textContent = t; el.appendChild(li); });
  }
  function draw() {
    var a = find(pick.value), b = other.value ? find(other.value) : null;
    document.getElementById('explorer-f').setAttribute('d', path(a.f));
    document.getElementById('explorer-g').setAttribute('d', path(a.g));
    document.getElementById('explorer-f2').setAttribute('d', b ? path(b.f) : '');
    document.getElementById('explorer-g2').setAttribute('d', b ? path(b.g) : '');
    document.getElementById('explorer-title').textContent = a.label + '  (family: ' + a.family + ')';
    document.getElementById('explorer-formula').textContent = 'f(x) = ' + a.formula;
    document.getElementById('explorer-derivative').textContent = "f'(x) = " + a.derivative;
    document.getElementById('explorer-source').textContent = a.source || '';
    rows(document.getElementById('explorer-properties'), a.properties);
    rows(document.getElementById('explorer-theory'), a.theory);
    list(document.getElementById('explorer-pros'), a.pros);
    list(document.getElementById('explorer-cons'), a.cons);
    document.getElementById('explorer-legend2').textContent = b ? ('thin lines: ' + b.label) : '';
  }
  pick.addEventListener('change', draw);
  other.addEventListener('change', draw);
  draw();
})();
"""


def _axes_svg() -> str:
    W, H, M, ymin, ymax = 640, 360, 40, -2.5, 3.5
    x0, x1 = X_RANGE

    def px(x: float) -> float:
        return M + (x - x0) / (x1 - x0) * (W - 2 * M)

    def py(y: float) -> float:
        return H - M - (y - ymin) / (ymax - ymin) * (H - 2 * M)

    parts = [f'<rect x="{M}" y="{M}" width="{W - 2 * M}" height="{H - 2 * M}" fill="#fff" stroke="#d9dee7"/>']
    for x in range(int(x0), int(x1) + 1, 2):
        parts.append(f'<line x1="{px(x):.1f}" y1="{M}" x2="{px(x):.1f}" y2="{H - M}" stroke="#eef1f6"/>'
                     f'<text x="{px(x):.1f}" y="{H - M + 16}" font-size="11" text-anchor="middle" fill="#5b6475">{x}</text>')
    for y in (-2, -1, 0, 1, 2, 3):
        parts.append(f'<line x1="{M}" y1="{py(y):.1f}" x2="{W - M}" y2="{py(y):.1f}" stroke="#eef1f6"/>'
                     f'<text x="{M - 6}" y="{py(y) + 4:.1f}" font-size="11" text-anchor="end" fill="#5b6475">{y}</text>')
    parts.append(f'<line x1="{px(0):.1f}" y1="{M}" x2="{px(0):.1f}" y2="{H - M}" stroke="#9aa3b2"/>'
                 f'<line x1="{M}" y1="{py(0):.1f}" x2="{W - M}" y2="{py(0):.1f}" stroke="#9aa3b2"/>')
    clip = (f'<defs><clipPath id="explorer-clip"><rect x="{M}" y="{M}" width="{W - 2 * M}" height="{H - 2 * M}"/>'
            '</clipPath></defs>')
    curves = ('<g clip-path="url(#explorer-clip)"><path id="explorer-f" fill="none" stroke="#1f5fa8" stroke-width="2.4"/>'
              '<path id="explorer-g" fill="none" stroke="#d0562c" stroke-width="2" stroke-dasharray="6 4"/>'
              '<path id="explorer-f2" fill="none" stroke="#1f5fa8" stroke-width="1" opacity="0.6"/>'
              '<path id="explorer-g2" fill="none" stroke="#d0562c" stroke-width="1" stroke-dasharray="3 3" opacity="0.6"/></g>')
    legend = (f'<text x="{M + 8}" y="{M + 16}" font-size="12" fill="#1f5fa8">f(x) solid</text>'
              f'<text x="{M + 90}" y="{M + 16}" font-size="12" fill="#d0562c">f\'(x) dashed</text>'
              f'<text id="explorer-legend2" x="{M + 190}" y="{M + 16}" font-size="12" fill="#5b6475"></text>')
    return (f'<svg id="explorer-plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" '
            f'height="{H}">{clip}{"".join(parts)}{curves}{legend}</svg>')


def add_explorer(page, extra: Iterable[str | Activation] = (), selected: str | None = None) -> Section:
    """Add the explorer tab (and its data and script) to `page`."""
    data = explorer_data(extra)
    labels = [a["label"] for a in data["activations"]]
    first = selected if selected in labels else ("relu" if "relu" in labels else labels[0])
    groups: dict[str, list[str]] = {}
    for a in data["activations"]:
        groups.setdefault(a["family"], []).append(a["label"])
    options = "".join(
        f'<optgroup label="{esc(fam)}">' + "".join(
            f'<option value="{esc(n)}"{" selected" if n == first else ""}>{esc(n)}</option>' for n in names)
        + "</optgroup>" for fam, names in groups.items())
    compare = '<option value="">(none)</option>' + "".join(f'<option value="{esc(n)}">{esc(n)}</option>' for n in labels)
    sec = page.section("explorer", "Activation explorer")
    sec.raw(
        '<div class="card"><label>activation <select id="explorer-pick">' + options + "</select></label> "
        '<label style="margin-left:16px">compare with <select id="explorer-compare">' + compare + "</select></label>"
        '<h3 id="explorer-title"></h3><div class="muted" id="explorer-formula"></div>'
        '<div class="muted" id="explorer-derivative"></div>'
        '<div style="display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start">' + _axes_svg() +
        '<div><h3>computed properties</h3><table class="data" id="explorer-properties"></table>'
        '<h3>mean-field theory</h3><table class="data" id="explorer-theory"></table></div></div>'
        '<div class="muted" id="explorer-source"></div>'
        '<h3>pros</h3><ul class="tight" id="explorer-pros"></ul><h3>cons</h3><ul class="tight" id="explorer-cons"></ul>'
        "</div>")
    payload = json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    sec.raw(f'<script type="application/json" id="explorer-data">{payload}</script>')
    page.scripts.append(SCRIPT)
    return sec
