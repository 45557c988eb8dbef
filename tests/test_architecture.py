"""docs/architecture.md stays true: every top-level package and module under gradvet/ has a layer in
the import-linter contract (pyproject.toml) and a line on the page under that same layer, the page
lists the contract's layers in its order, and the README's layout tree names every one of them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "architecture.md"


def top_level() -> dict[str, str]:
    """name -> how the page and the README write it: 'gradvet/NAME/' for a package, 'gradvet/NAME.py'."""
    found = {}
    for path in sorted((ROOT / "gradvet").iterdir()):
        if path.is_dir() and (path / "__init__.py").exists():
            found[path.name] = f"gradvet/{path.name}/"
        elif path.suffix == ".py" and path.name != "__init__.py":
            found[path.stem] = f"gradvet/{path.name}"
    return found


def contract_layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    assert contract["containers"] == ["gradvet"]
    return contract["layers"]


def members(layer: str) -> list[str]:
    return [name.strip() for name in layer.split("|")]


def page_sections() -> list[tuple[str, str]]:
    """(layer as the heading writes it, the section's text) for each '### N. `layer`', in order."""
    text = PAGE.read_text()
    heads = list(re.finditer(r"^### (\d+)\. `([^`]+)`$", text, re.MULTILINE))
    assert [int(h.group(1)) for h in heads] == list(range(1, len(heads) + 1)), "the layers are numbered 1, 2, ..."
    after = text.find("\n## ", heads[-1].end())
    ends = [h.start() for h in heads[1:]] + [after if after >= 0 else len(text)]
    return [(h.group(2), text[h.end():end]) for h, end in zip(heads, ends)]


def test_every_package_and_module_is_in_the_contract_once():
    names = top_level()
    assert {"base", "cli", "probe", "sweep"} <= set(names)  # the walk found the tree
    placed = [name for layer in contract_layers() for name in members(layer)]
    missing = sorted(set(names) - set(placed))
    assert not missing, f"add {missing} to the layers of [tool.importlinter] in pyproject.toml"
    stale = sorted(set(placed) - set(names))
    assert not stale, f"the contract names {stale}, which gradvet/ does not have"
    assert len(placed) == len(set(placed))


def test_the_page_lists_the_contract_layers_in_order():
    assert [layer for layer, _ in page_sections()] == contract_layers()


def test_every_package_and_module_is_on_the_page_under_its_layer():
    names = top_level()
    listed = {}
    for layer, section in page_sections():
        for written in re.findall(r"^- `(gradvet/[^`]+)`", section, re.MULTILINE):
            listed[written] = layer
    for name, written in names.items():
        layer = next(layer for layer in contract_layers() if name in members(layer))
        assert written in listed, f"docs/architecture.md: add a line '- `{written}`: ...' under the layer `{layer}`"
        assert listed[written] == layer, f"docs/architecture.md lists {written} under `{listed[written]}`, the contract under `{layer}`"
    stale = sorted(set(listed) - set(names.values()))
    assert not stale, f"docs/architecture.md lists {stale}, which gradvet/ does not have"


def test_the_readme_tree_names_every_package_and_module():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    tree = layout[layout.index("```") + 3:layout.index("```", layout.index("```") + 3)]
    written = re.findall(r"^(gradvet/\S+)", tree, re.MULTILINE)
    assert sorted(written) == sorted(top_level().values())
    assert "docs/architecture.md" in layout
