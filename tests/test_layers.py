"""The layers contract of pyproject.toml (checked by ``lint-imports`` in ``make lint`` and
``make test``) and the absence of import cycles among the project's modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def importlinter_configuration() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def layers_contract() -> dict:
    (contract,) = [c for c in importlinter_configuration()["contracts"] if c["type"] == "layers"]
    return contract


def run_lint_imports(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=folder,
        capture_output=True,
        text=True,
        env={"PATH": str(LINT_IMPORTS.parent), "PYTHONPATH": str(folder)},
    )


def write_layered_tree(folder: Path, layers: list[str], violation: tuple[str, str] | None) -> None:
    """One package per layer, each importing the layer just below it (allowed); ``violation``
    ``(low, high)`` adds a module of ``low`` importing ``high``."""
    for upper, lower in zip(layers, [*layers[1:], None], strict=True):
        package = folder / upper
        package.mkdir()
        (package / "__init__.py").write_text(f"import {lower}\n" if lower else "")
    if violation is not None:
        low, high = violation
        (folder / low / "upward.py").write_text(f"def leak():\n    from {high} import x\n")
    contract = layers_contract()
    (folder / "pyproject.toml").write_text(
        "[tool.importlinter]\n"
        f"root_packages = {json.dumps(layers)}\n\n"
        "[[tool.importlinter.contracts]]\n"
        f"name = {json.dumps(contract['name'])}\n"
        'type = "layers"\n'
        f"layers = {json.dumps(layers)}\n"
    )


def test_contract_orders_every_root_package_from_the_command_line_down():
    assert layers_contract()["layers"] == ["coremtl_cli", "experiments", "proofs", "coremtl", "scm"]
    assert set(importlinter_configuration()["root_packages"]) == set(layers_contract()["layers"])


def test_the_repository_keeps_the_layers_contract():
    completed = run_lint_imports(ROOT)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "1 kept, 0 broken" in completed.stdout


@pytest.mark.parametrize(
    "violation", [("scm", "coremtl_cli"), ("coremtl", "experiments"), ("proofs", "experiments")]
)
def test_an_upward_import_breaks_the_contract(tmp_path, violation):
    layers = layers_contract()["layers"]
    write_layered_tree(tmp_path, layers, violation)
    completed = run_lint_imports(tmp_path)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "BROKEN" in completed.stdout
    assert f"{violation[0]}.upward -> {violation[1]}" in completed.stdout


def test_the_same_tree_without_the_upward_import_keeps_the_contract(tmp_path):
    write_layered_tree(tmp_path, layers_contract()["layers"], violation=None)
    completed = run_lint_imports(tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def import_cycles(graph: grimp.ImportGraph) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: set[frozenset[str]] = set()

    def visit(module: str) -> None:
        index[module] = lowlink[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                lowlink[module] = min(lowlink[module], lowlink[imported])
            elif imported in on_stack:
                lowlink[module] = min(lowlink[module], index[imported])
        if lowlink[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                components.add(frozenset(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return components


def test_import_cycles_are_found_in_a_throwaway_tree(tmp_path, monkeypatch):
    package = tmp_path / "ring"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from ring import b\n")
    (package / "b.py").write_text("def late():\n    from ring import a\n")
    (package / "c.py").write_text("from ring import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("ring", cache_dir=None)
    assert import_cycles(graph) == {frozenset({"ring.a", "ring.b"})}


def test_no_import_cycle_among_the_project_modules():
    graph = grimp.build_graph(*layers_contract()["layers"], cache_dir=None)
    assert len(graph.modules) > 50
    assert import_cycles(graph) == set()


MODULE_LINES = 400
"""The longest module of the library and of the studies, in lines (one concept per module)."""


@pytest.mark.parametrize("folder", ["coremtl", "experiments/synthetic"])
def test_no_module_of_the_library_or_of_a_study_is_over_the_line_bound(folder):
    long = {
        str(path.relative_to(ROOT)): count
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (count := len(path.read_text().splitlines())) > MODULE_LINES
    }
    assert not long, f"over {MODULE_LINES} lines: {long}"
