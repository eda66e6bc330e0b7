"""What a `swarm hook` process imports: the operations it sends, not the rest of the shell's.

A client runs `swarm hook` at every turn of a live session, and Claude Code gives SessionEnd's
hooks 1.5 s in all (docs/live.md), so the start-up counts. The shells import each module of
operations at an operation's first use (``_client._Later``; the type checker sees the modules
themselves), and the cluster's own modules only for a cluster: a turn's hook loads the agents',
tasks' and messages' operations and none of the claims', contexts', views', findings', A2A
stores' or Lua text search's (the claim of `--loop` brings its own when it claims). Nor
what only some URLs or some errors need: the Cluster's and Sentinel's clients (for their
URLs), the embedded server's module (for its URL), the ACL roles and the operations' command
table (for a refusal said with them). Held by the modules loaded, not by timing.
"""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import pytest

from redis_swarm import Settings, Swarm, _client

from .test_import_cost import _loaded_by, _under

# Loaded by every hook before (the shell imported every module of operations, and the sender
# of strict writes on a cluster), and by none now: what no turn's hook sends.
NOT_SENT = (
    "redis_swarm._strict_cluster",
    "redis_swarm._ops.a2a_store",
    "redis_swarm._ops.ask",
    "redis_swarm._ops.claiming",
    "redis_swarm._ops.contexts",
    "redis_swarm._ops.costs",
    "redis_swarm._ops.counters",
    "redis_swarm._ops.doctor",
    "redis_swarm._ops.events",
    "redis_swarm._ops.findings",
    "redis_swarm._ops.retire",
    "redis_swarm._ops.retire_questions",
    "redis_swarm._ops.unrecorded",
    "redis_swarm._ops.views",
    "redis_swarm._ops.webhooks",
    "zstandard",  # (the contexts' compression)
    "re2",  # (the contexts' search)
)
# Loaded by every hook before, through the connection and the translation of errors, and
# by none now: what neither a plain URL nor a request that succeeds needs.
NOT_NEEDED = (
    "redis_swarm._cluster",  # (a cluster URL's client)
    "redis_swarm._sentinel",  # (a sentinel URL's)
    "redis_swarm._embedded",  # (the embedded server's: `embedded` URLs)
    "redis_swarm._acl",  # (a refusal says which roles may: _translate)
    "redis_swarm._ops._commands",  # (and which operation sends what)
    "redis_swarm._net",  # (whether a host is loopback: server_info's)
)
AGENT = "hook-imports-1"


@pytest.mark.parametrize("event", ["UserPromptSubmit", "Stop", "SessionEnd"])
def test_a_hook_imports_the_operations_it_sends_and_no_others(redis_url: str, event: str) -> None:
    env = {"SWARM_URL": redis_url, "SWARM_AGENT": AGENT}
    start = {"hook_event_name": "SessionStart", "session_id": "s-imports", "source": "startup"}
    _loaded_by("hook", "SessionStart", "--client", "claude", stdin=json.dumps(start), **env)
    payload = {"hook_event_name": event, "session_id": "s-imports", "stop_hook_active": False}
    loaded, answer = _loaded_by(
        "hook", event, "--client", "claude", stdin=json.dumps(payload), **env
    )
    assert json.loads(answer) is not None
    assert "redis_swarm._ops.agents" in loaded  # (what it sent: its agent's record)
    assert not _under(loaded, *NOT_SENT)
    assert not _under(loaded, *NOT_NEEDED)
    if event == "SessionEnd":
        assert "redis_swarm._ops.messages" not in loaded  # (the turns read the inbox)
        assert "redis_swarm._ops.tasks" not in loaded  # (it reads and writes its agent only)
        with Swarm(Settings.from_url(redis_url, swarm="default")) as swarm:
            assert swarm.get_agent(AGENT).alive is False  # (it did its work)


def _imported_for_the_type_checker() -> dict[str, str]:
    """The modules of operations ``_client`` imports under TYPE_CHECKING: name -> module."""
    tree = ast.parse(Path(_client.__file__).read_text(encoding="utf-8"))
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom) and statement.module == "_ops":
                    for alias in statement.names:
                        names[alias.asname or alias.name] = f"redis_swarm._ops.{alias.name}"
    return names


def test_each_module_named_at_run_time_is_the_one_the_type_checker_sees() -> None:
    imported = _imported_for_the_type_checker()
    later = {
        name: value._module
        for name, value in vars(_client).items()
        if isinstance(value, _client._Later)
    }
    assert imported and later == imported
    # and each operation of the shells is found, a generator of one of those modules
    kinds = (_client._Op, _client._Overloaded)
    operations = [attr for attr in vars(_client._Shell).values() if isinstance(attr, kinds)]
    assert len(operations) > 50
    for op in operations:
        assert inspect.isgeneratorfunction(op.__wrapped__), op.__wrapped__
        assert op.__wrapped__.__module__.startswith("redis_swarm._ops."), op.__wrapped__
