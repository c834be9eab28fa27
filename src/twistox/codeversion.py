"""Code version of a rule: a hash of the twistox source its script runs.

Snakemake reruns a job when its params change (the ``params`` rerun trigger), but it does
not see the library modules a ``script:`` imports. The workflow therefore adds
``params.code = code_version(script)`` to every rule: a SHA-256 over the script and every
``twistox`` module it reaches through imports (any depth, function-level imports included,
each package's ``__init__.py`` on the way, and the package's data files), so editing
``src/twistox/relax/`` reruns relax and everything downstream of it, while editing
``src/twistox/stem/`` leaves relax alone.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[1]  # .../src
PACKAGE = "twistox"


def _module_files(name: str, src: Path) -> list[Path]:
    """Files executed by ``import name`` (its package __init__ files, then the module)."""
    parts = name.split(".")
    out = []
    for i in range(1, len(parts) + 1):
        base = src.joinpath(*parts[:i])
        init = base / "__init__.py"
        if init.exists():
            out.append(init)
        elif i == len(parts) and base.with_suffix(".py").exists():
            out.append(base.with_suffix(".py"))
    return out


def _imported_names(tree: ast.AST, package: str | None) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if package is None:
                    continue
                base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}  # `from pkg import module`
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def reached_files(script: str | Path, src: Path = SRC) -> list[Path]:
    """The script and every twistox source file it reaches through imports, sorted."""
    script = Path(script).resolve()
    seen: set[Path] = set()
    todo: list[tuple[Path, str | None]] = [(script, None)]
    while todo:
        f, pkg = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        for name in _imported_names(ast.parse(f.read_bytes(), filename=str(f)), pkg):
            for mf in _module_files(name, src):
                # package that relative imports inside mf resolve against (pkg/__init__ and pkg/mod: pkg)
                todo.append((mf, ".".join(mf.relative_to(src).parts[:-1])))
    data = set()
    for f in seen:  # non-Python files shipped inside the packages reached (tables, YAML)
        if f.is_relative_to(src):
            data |= {p for p in f.parent.iterdir() if p.is_file() and p.suffix not in (".py", ".pyc")}
    return sorted(seen | data)


@lru_cache(maxsize=None)
def _code_version(script: Path, src: Path, stamp: tuple) -> str:
    h = hashlib.sha256()
    for f in reached_files(script, src):
        rel = f.relative_to(src) if f.is_relative_to(src) else Path(f.name)
        h.update(str(rel).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def code_version(script: str | Path, src: Path = SRC) -> str:
    """16-hex-digit SHA-256 of ``script`` and the twistox source it reaches."""
    script = Path(script).resolve()
    stamp = tuple((str(p), p.stat().st_mtime_ns) for p in sorted(src.joinpath(PACKAGE).rglob("*.py")))
    return _code_version(script, Path(src).resolve(), stamp)
