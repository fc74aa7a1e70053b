"""The import contract: the layers of README "Layout", kept by import-linter (pyproject's
``[tool.importlinter]``), plus no import circles and no imports of other modules' private names."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sdk", "landmarkdata", "calibration", "converters", "training", "benchmarks", "edgemark_cli")

importlinter = pytest.importorskip("importlinter", reason="import-linter is installed by the dev extra")
grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter")


def _lint(root: Path) -> str:
    """Run the project's import-linter contracts on the packages under ``root``; return its report.

    In a fresh interpreter without site processing (``-S``), so that the editable install's finder
    cannot point the analysis back at the checkout: ``root`` comes first on the path."""
    site_packages = Path(importlinter.__file__).resolve().parent.parent
    code = ("import sys; from importlinter import cli; "
            f"sys.exit(cli.lint_imports(config_filename={str(root / 'pyproject.toml')!r}, no_cache=True))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(site_packages)])}
    run = subprocess.run([sys.executable, "-S", "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert run.returncode in (0, 1), run.stdout + run.stderr  # 1 = a contract is broken; anything else failed
    return run.stdout


def _copy_tree(dst: Path) -> Path:
    shutil.copy(ROOT / "pyproject.toml", dst / "pyproject.toml")
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dst / pkg, ignore=shutil.ignore_patterns("__pycache__", "models", "data"))
    return dst


def test_import_contracts_are_kept(tmp_path):
    report = _lint(_copy_tree(tmp_path))
    assert "2 kept, 0 broken" in report, report


@pytest.mark.parametrize("module, imported, broken", [
    ("schemes", "converters", 2),  # the tooling: breaks the layers and the runtime's own contract
    ("preprocess", "torch", 1),    # a workstation library: the runtime's contract
])
def test_import_contract_fails_on_a_runtime_import_it_forbids(tmp_path, module, imported, broken):
    tree = _copy_tree(tmp_path)
    bad = tree / "sdk" / f"{module}.py"
    bad.write_text(bad.read_text() + f"\n\ndef _oops():\n    import {imported}  # noqa: F401\n")
    report = _lint(tree)
    assert f"{broken} broken" in report and f"sdk.{module} -> {imported}" in report, report


def _cycles() -> list[list[str]]:
    """Strongly connected groups of more than one module (function-level imports included)."""
    graph = grimp.build_graph(*PACKAGES, cache_dir=None, exclude_type_checking_imports=True)
    modules = {m for m in graph.modules if m.split(".")[0] in PACKAGES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v) & modules:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for m in sorted(modules):
        if m not in index:
            visit(m)
    return groups


def test_no_import_circles():
    assert _cycles() == []


def test_no_module_imports_another_modules_private_names():
    offenders = []
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and node.module and node.module != "__future__":
                    for alias in node.names:
                        if alias.name.startswith("_") and not alias.name.startswith("__"):
                            offenders.append(f"{path.relative_to(ROOT)}: from {'.' * node.level}{node.module} "
                                             f"import {alias.name}")
    assert offenders == []
