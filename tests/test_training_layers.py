"""The training, apps and report modules import downward only (checked on their source, nothing imported):
training never imports apps, experiment or cli; the report modules read run directories and import nothing
from training; apps never imports experiment or cli."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "rnnlab"
FORBIDDEN = {
    "training": ("rnnlab.apps", "rnnlab.experiment", "rnnlab.cli", "rnnlab.analysis.report"),
    "apps": ("rnnlab.experiment", "rnnlab.cli"),
    "report": ("rnnlab.training", "rnnlab.apps", "rnnlab.experiment", "rnnlab.cli", "jax", "flax"),
}
FILES = {
    "training": sorted((ROOT / "training").glob("*.py")),
    "apps": sorted((ROOT / "apps").glob("*.py")),
    "report": sorted((ROOT / "analysis").glob("report*.py")),
}


def imported(path: pathlib.Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` names (``from a import b``: ``a`` and ``a.b``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize("layer, path", [(k, p) for k, ps in FILES.items() for p in ps], ids=lambda x: str(x))
def test_imports_flow_down(layer, path):
    bad = sorted(
        name
        for name in imported(path)
        for prefix in FORBIDDEN[layer]
        if name == prefix or name.startswith(prefix + ".")
    )
    assert not bad, f"{path.relative_to(ROOT.parent)} imports {bad}"


def test_every_layer_has_files():
    assert all(FILES.values()) and len(FILES["report"]) >= 2
