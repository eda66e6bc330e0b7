"""The faces never talk protocol: no face imports redis-py or the connection layer, nor sends
a command itself (``execute_command``). ``swarm doctor`` asked the sentinels and the nodes of
a cluster from the CLI; that is the core's ``redis_swarm.topology`` now. (tests/test_layers.py
holds the faces to the shells' public surface; this, to the core for every command.)"""

from __future__ import annotations

import ast
from pathlib import Path

from .test_layers import PACKAGE, _face_files

# Faces that still talk protocol, to be moved into the core: each must still do so (drop it
# from here when it is moved).
STILL_TO_MOVE: set[str] = set()  # (swarm acl --apply is redis_swarm.apply_role now)
# redis-py, and the transport modules that hold its clients and connections
_CONNECTING = (
    "redis",
    *(
        f"redis_swarm.{m}"
        for m in ("_connect", "_retries", "_connections", "_sentinel", "_cluster", "_direct")
    ),
)


def _protocol_in(path: Path) -> list[str]:
    """Where the face at ``path`` imports redis-py or the connection layer, or sends a
    command."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            # relative imports name the module without the package: "_connect", ".._connect"
            modules = [node.module if node.level == 0 else f"redis_swarm.{node.module}"]
        if isinstance(node, ast.Import | ast.ImportFrom) and any(
            m == c or m.startswith(f"{c}.") for m in modules for c in _CONNECTING
        ):
            found.append(f"{node.lineno}: import {', '.join(modules)}")
        if isinstance(node, ast.Attribute) and node.attr == "execute_command":
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_faces_send_no_command_of_their_own() -> None:
    talking = {
        str(path.relative_to(PACKAGE)): found
        for path in _face_files()
        if (found := _protocol_in(path))
    }
    assert "cli/_server.py" not in talking, talking.get("cli/_server.py")
    moved = STILL_TO_MOVE - set(talking)
    assert not moved, f"{moved} no longer talk protocol: drop them from STILL_TO_MOVE"
    others = {name: found for name, found in talking.items() if name not in STILL_TO_MOVE}
    assert not others, "give the core a public operation that does it (as redis_swarm.topology)"


def test_the_check_sees_a_command_and_an_import(tmp_path: Path) -> None:
    face = tmp_path / "face.py"
    face.write_text(
        "import redis\nfrom .._connect import sync_client\n"
        "def f(c):\n    return c.execute_command('CLUSTER', 'INFO')\n"
    )
    assert len(_protocol_in(face)) == 3
