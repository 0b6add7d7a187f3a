"""The layout's rules, checked on the source (docs/architecture.md): imports only point down the layers, no model
module is imported by another module, serving never probes a model with getattr / hasattr, no source file grows past
450 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "fusionrec"
MAX_LINES = 450

# lower numbers are lower layers; a module may import its own layer and any below it
LAYERS = {"errors": 0, "typed_config": 0, "config": 0, "util": 0, "data": 1, "knowledge": 2, "fusion": 3,
          "models": 4, "training": 5, "evaluation": 5, "artifacts": 6, "serving": 7, "jobs": 8, "cli": 9,
          "__main__": 10}
# pairs of same-or-lower layers that still must not meet: serving never trains, the evaluator never sees the trainer
FORBIDDEN = {"serving": {"training"}, "evaluation": {"training"}, "artifacts": {"training"}}
SOURCES = sorted(p for p in SRC.rglob("*.py") if p.name != "__init__.py" or p.parent != SRC)


def layer_of(module: str) -> str | None:
    """'fusionrec.models.bpr' -> 'models'; None outside fusionrec or for the package root."""
    parts = module.split(".")
    if parts[0] != "fusionrec" or len(parts) < 2:
        return None
    return parts[1]


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
            out += [f"{node.module}.{a.name}" for a in node.names if node.module == "fusionrec"]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return out


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down_the_layers(path):
    own = layer_of(module_name(path))
    for imported in imports_of(path):
        other = layer_of(imported)
        if own is None or other is None or other not in LAYERS:
            continue
        assert LAYERS[other] <= LAYERS[own], f"{module_name(path)} ({own}) imports {imported} ({other}), a layer above"
        assert other not in FORBIDDEN.get(own, ()), f"{module_name(path)} ({own}) must not import {imported}"


def _model_modules() -> set[str]:
    return {f"fusionrec.models.{p.stem}" for p in (SRC / "models").glob("*.py") if "@register" in p.read_text()}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_model_module_is_imported_outside_the_registry(path):
    if path.parent.name == "models" and path.stem in ("builtin", "registry"):
        return
    models = _model_modules()
    bad = [m for m in imports_of(path) if m in models]
    assert not bad, f"{module_name(path)} imports the model module(s) {bad}: share through a helper module"


def test_the_model_module_list_is_not_empty():
    assert {"fusionrec.models.fusionrec", "fusionrec.models.bpr", "fusionrec.models.ease"} <= _model_modules()


@pytest.mark.parametrize("path", sorted((SRC / "serving").glob("*.py")), ids=lambda p: p.name)
def test_serving_declares_instead_of_probing_models(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr"):
            target = ast.unparse(node.args[0]) if node.args else ""
            assert "model" not in target and "artifact" not in target, \
                f"{path.name}:{node.lineno}: {ast.unparse(node)} probes a model: declare a capability instead"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_source_file_is_over_the_line_limit(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(SRC)} has {n} lines (limit {MAX_LINES}): split it by job"
