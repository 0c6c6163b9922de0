"""The package layout the README's map states, checked on the imports themselves: the IR core is
numpy-only, `hw/` and the golden models read only the IR, `model/` knows nothing of the flow."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IR_CORE = {"build_flow.ir", "build_flow.ops", "build_flow.ir_passes"}
UTILITIES = {"model.errors", "model.atomic", "model.config"}   # one-line errors, atomic writes, YAML

# package (or module) -> the project modules it may import (prefixes); third-party imports are listed
# separately where they matter
ALLOWED = {
    "model": {"model"},
    "build_flow.ir": {"build_flow.ops", "model.errors"},
    "build_flow.ops": set(),
    "build_flow.ir_passes": {"build_flow.ir"},
    "verify.golden_numpy": IR_CORE,
    "verify.golden_onnx": IR_CORE | {"model.atomic", "verify.golden_numpy"},
    "verify.compare": IR_CORE | {"model.data", "model.errors", "verify.golden_numpy", "verify.golden_onnx"},
    "hw": IR_CORE | UTILITIES | {"hw"},
}
NO_HEAVY = {"build_flow.ir", "build_flow.ops", "build_flow.ir_passes", "verify.golden_numpy", "hw"}
HEAVY = ("torch", "brevitas", "qonnx", "onnx", "finn")   # hw/ and the IR core import none of them


def _imports(path: Path, root: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            pkg = ".".join(path.relative_to(root).with_suffix("").parts[:-node.level])
            names.add(f"{pkg}.{node.module}" if node.module else pkg)
    return names


def _modules(prefix: str, root: Path) -> list[tuple[str, Path]]:
    base = root / prefix.replace(".", "/")
    files = [base.with_suffix(".py")] if base.with_suffix(".py").is_file() else sorted(base.rglob("*.py"))
    return [(".".join(f.relative_to(root).with_suffix("").parts), f) for f in files]


def _project(name: str) -> bool:
    return name.split(".")[0] in ("model", "build_flow", "hw", "verify")


def violations(unit: str, root: Path = ROOT) -> list[str]:
    bad = []
    for mod, path in _modules(unit, root):
        for name in _imports(path, root):
            if _project(name) and not any(name == a or name.startswith(a + ".") for a in ALLOWED[unit]):
                bad.append(f"{mod} imports {name}")
            if unit in NO_HEAVY and name.split(".")[0] in HEAVY:
                bad.append(f"{mod} imports {name}")
    return bad


@pytest.mark.parametrize("unit", sorted(ALLOWED))
def test_imports_follow_the_layout(unit):
    assert _modules(unit, ROOT), unit
    bad = violations(unit)
    assert not bad, "\n".join(bad)


def test_the_check_sees_a_violation(tmp_path):
    """The rule above is not vacuous: a hw module importing verify, or torch, is reported."""
    (tmp_path / "hw").mkdir()
    (tmp_path / "hw" / "probe.py").write_text("import torch\nfrom verify.golden_numpy import run_numpy\n"
                                              "from .planner import plan\n")
    assert sorted(violations("hw", tmp_path)) == ["hw.probe imports torch", "hw.probe imports verify.golden_numpy"]
