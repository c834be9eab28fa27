"""Import graph follows the pipeline (issue 15 item 1): a stage package imports core/ and earlier stages only;
core/ imports no stage at module level."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "twistox"
ORDER = ["core", "supercell", "dft", "mlip", "relax", "strain", "phasefield", "stem", "analysis", "report"]
CHECKED = ["core", "supercell", "dft", "mlip", "relax"]  # packages whose owners signed up to this test


def imported_packages(path: Path, module_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    out = set()
    for node in nodes:
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [f"twistox.{path.parent.name}"]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for n in names:
            parts = n.split(".")
            if parts[0] == "twistox" and len(parts) > 1 and parts[1] in ORDER:
                out.add(parts[1])
    return out


@pytest.mark.parametrize("package", CHECKED)
def test_package_imports_only_core_and_earlier_stages(package):
    rank = ORDER.index(package)
    bad = {}
    for f in sorted((SRC / package).glob("*.py")):
        # core may resolve samples through the supercell lattice lazily, never at import time
        later = {p for p in imported_packages(f, module_level_only=package == "core")
                 if ORDER.index(p) > rank and p != package}
        if later:
            bad[f.name] = sorted(later)
    assert not bad, f"{package} imports later stages: {bad}"


def test_the_scan_sees_a_forbidden_import(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("from twistox.relax.stage import run\nimport numpy\n")
    assert imported_packages(f, True) == {"relax"}
