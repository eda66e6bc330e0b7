"""The layers hold: the faces (CLI, MCP server, dashboard, runner, seed API, bench, demo) use
the public surface of ``Swarm`` / ``AsyncSwarm``, never their private parts."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import redis_swarm
from redis_swarm import AsyncSwarm, Swarm

PACKAGE = Path(redis_swarm.__file__).parent
FACES = ["cli", "dashboard", "mcp_server", "a2a_server", "_runner", "_pipeline", "_hooks",
         "roles", "a2a", "_bench.py", "_demo.py", "_web.py"]  # fmt: skip


def _face_files() -> list[Path]:
    files: list[Path] = []
    for name in FACES:
        path = PACKAGE / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []
    return files


def test_faces_never_reach_into_the_shells() -> None:
    handle = Swarm("redis://127.0.0.1:1", swarm="layers")  # never connects
    names = {*dir(Swarm), *dir(AsyncSwarm), *vars(handle)}
    handle.close()
    private = {n for n in names if n.startswith("_") and not n.startswith("__")}
    assert {"_ctx", "_run", "_redis"} <= private
    reach_ins = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}: {ast.unparse(node)}"
        for path in _face_files()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute)
        and node.attr in private
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
    ]
    assert len(_face_files()) > 20
    assert not reach_ins, "give Swarm a public property or operation instead"


def test_faces_never_import_the_operations() -> None:
    """A face calls ``Swarm``; what it checks before a call comes from the records layer
    (``_models``, ``_validate``), never from an operation's module."""
    imports = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path in _face_files()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom)
        and node.module
        and (node.module == "_ops" or node.module.startswith(("_ops.", "redis_swarm._ops")))
    ]
    assert not imports, "give the face what it needs in _models, _validate or on Swarm"


def test_the_layer_map_names_every_module() -> None:
    """docs/architecture.md draws every module of the package, and only real ones."""
    doc = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    drawing = doc.split("```")[1]
    modules = {
        path.name
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" and path.stem not in ("__init__", "__main__"))
        or (path / "__init__.py").exists()
        or path.name in ("lua", "prompts")
    }
    missing = [m for m in sorted(modules) if m.removesuffix(".py") not in drawing]
    assert not missing, "add them to the map in docs/architecture.md"
    named = set(re.findall(r"\b(_?[a-z_]+)(?:\.py|/)", drawing))
    real = {m.removesuffix(".py") for m in modules} | {p.stem for p in PACKAGE.glob("*/*.py")}
    assert named <= real | {"static"}, named - real
