"""What the package declares (pyproject.toml) against what it is: the modules its code imports,
its version, the licenses of what it ships, and the wheel hatchling builds from it."""

from __future__ import annotations

import ast
import email.parser
import importlib.metadata
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import redis_swarm

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "redis_swarm"
# The packages of an extra, and the extra: the rest of the package is the core.
EXTRAS = {"a2a": "a2a", "a2a_server": "a2a"}
# The newest Python the classifiers name (the oldest is requires-python's floor).
NEWEST_PYTHON = (3, 13)


@cache
def pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        loaded: dict[str, Any] = tomllib.load(file)
    return loaded


def _declared(extra: str | None) -> set[str]:
    """The distributions the core (``extra`` None) or an extra may import."""
    project = pyproject()["project"]
    lines = list(project["dependencies"])
    if extra is not None:
        lines += project["optional-dependencies"][extra]
    return {canonicalize_name(Requirement(line).name) for line in lines}


def _optional(handlers: list[ast.ExceptHandler]) -> bool:
    names = {ast.unparse(h.type) for h in handlers if h.type is not None}
    return bool(names & {"ImportError", "ModuleNotFoundError"})


def _imports(tree: ast.AST) -> set[str]:
    """The absolute imports a module makes whatever is installed: not those under ``if
    TYPE_CHECKING`` nor those a ``try: ... except ImportError`` makes optional."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Try) and _optional(child.handlers):
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.add(child.module)
            visit(child)

    visit(tree)
    return found


@cache
def _installed() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


@cache
def _files(distribution: str) -> tuple[str, ...]:
    return tuple(str(file) for file in importlib.metadata.distribution(distribution).files or ())


@cache
def _distributions_of(module: str) -> frozenset[str]:
    """The installed distributions that hold ``module`` (``google.protobuf``: protobuf, not
    the other distributions of the ``google`` namespace)."""
    top = module.partition(".")[0]
    candidates = _installed().get(top, [])
    prefix = module.replace(".", "/")
    holding = [
        name
        for name in candidates
        if any(file.startswith((f"{prefix}/", f"{prefix}.py")) for file in _files(name))
    ]
    return frozenset(canonicalize_name(name) for name in holding or candidates or [top])


def test_every_module_the_code_imports_is_a_declared_dependency() -> None:
    undeclared: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        extra = EXTRAS.get(relative.parts[0]) if len(relative.parts) > 1 else None
        declared = _declared(extra)
        for module in sorted(_imports(ast.parse(path.read_text(encoding="utf-8")))):
            top = module.partition(".")[0]
            if top in sys.stdlib_module_names or top == "redis_swarm":
                continue
            if not _distributions_of(module) & declared:
                where = f"the {extra} extra" if extra else "dependencies"
                undeclared.append(f"{relative} imports {module}, not in {where}")
    assert not undeclared, "\n".join(undeclared)


def test_the_version_is_written_once_and_installed_as_written() -> None:
    project = pyproject()["project"]
    assert "version" not in project and "version" in project["dynamic"]
    source = ROOT / pyproject()["tool"]["hatch"]["version"]["path"]
    assert source.resolve() == Path(redis_swarm.__file__).resolve()
    installed = importlib.metadata.version("redis-swarm")
    assert installed == redis_swarm.__version__, (
        f"redis-swarm {installed} is installed, __version__ is {redis_swarm.__version__}: "
        "reinstall it (pip install -e . --no-deps)"
    )


def test_the_license_covers_the_python_docs_shipped() -> None:
    project = pyproject()["project"]
    guide = (PACKAGE / "data" / "stdlib-field-guide.md").read_text(encoding="utf-8")
    assert "PSF License Agreement" in guide[:400]
    assert project["license"] == "MIT AND PSF-2.0"
    files = {path for glob in project["license-files"] for path in ROOT.glob(glob)}
    assert files == {ROOT / "LICENSE", ROOT / "LICENSES" / "PSF-2.0.txt"}
    text = (ROOT / "LICENSES" / "PSF-2.0.txt").read_text(encoding="utf-8")
    assert text.startswith("PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2\n")


def test_the_project_says_what_it_runs_on() -> None:
    project = pyproject()["project"]
    floor = tuple(int(part) for part in project["requires-python"].removeprefix(">=").split("."))
    pythons = [f"3.{minor}" for minor in range(floor[1], NEWEST_PYTHON[1] + 1)]
    classifiers = set(project["classifiers"])
    missing = {f"Programming Language :: Python :: {v}" for v in pythons} - classifiers
    assert not missing
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    assert any(c.startswith("Operating System :: ") for c in classifiers)
    assert project["optional-dependencies"]["dashboard"] == []  # (kept, empty: an alias)


@pytest.mark.slow
def test_the_wheel_carries_the_metadata_and_the_licenses(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    if built.returncode and "Could not find a version that satisfies" in built.stderr:
        pytest.skip(f"no build backend to be had (offline?): {built.stderr.strip()[-300:]}")
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("redis_swarm-*.whl")
    info = f"redis_swarm-{redis_swarm.__version__}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = email.parser.Parser().parsestr(archive.read(f"{info}/METADATA").decode())
    project = pyproject()["project"]
    assert metadata["Version"] == redis_swarm.__version__
    assert metadata["License-Expression"] == project["license"]
    assert sorted(metadata.get_all("License-File") or []) == ["LICENSE", "LICENSES/PSF-2.0.txt"]
    assert {f"{info}/licenses/LICENSE", f"{info}/licenses/LICENSES/PSF-2.0.txt"} <= names
    assert "redis_swarm/data/stdlib-field-guide.md" in names
    assert set(metadata.get_all("Classifier") or []) == set(project["classifiers"])
