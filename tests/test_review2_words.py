"""What a second review of the session's changes asked: one word per fact. A sum of money is
rounded to significant digits, so its constant says digits (``MONEY_DIGITS``, was
MONEY_PLACES); the rule "SWARM_TASK_TOKEN applies when SWARM_TASK_ID names the task" was
written in ``swarm ask`` and in ``swarm task report``/``renew``/... each, with the variables'
names as literals: one helper, ``_env.run_task_token``, the names once (``_env``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from redis_swarm import _env, _usage
from redis_swarm._usage import figure_json

SRC = Path(__file__).resolve().parent.parent / "src" / "redis_swarm"


def test_a_sum_of_money_is_rounded_to_money_digits() -> None:
    assert not hasattr(_usage, "MONEY_PLACES")
    assert "MONEY_DIGITS" in _usage.__all__
    digits = _usage.MONEY_DIGITS
    # significant digits: the noise of a float sum goes, a tiny sum stays itself
    assert figure_json("cost_usd", 0.24000000000000002) == 0.24
    assert figure_json("cost_usd", 1e-12) == 1e-12
    assert figure_json("cost_usd", 1 + 10 ** -(digits + 2)) == 1.0


@pytest.mark.parametrize(
    ("env", "task_id", "token"),
    [
        ({"SWARM_TASK_ID": "t1", "SWARM_TASK_TOKEN": "1.abc"}, "t1", "1.abc"),
        ({"SWARM_TASK_ID": "t2", "SWARM_TASK_TOKEN": "1.abc"}, "t1", None),  # another task's
        ({"SWARM_TASK_TOKEN": "1.abc"}, "t1", None),  # no task named: not taken
        ({"SWARM_TASK_ID": "t1", "SWARM_TASK_TOKEN": ""}, "t1", None),  # empty: none
        ({"SWARM_TASK_ID": "t1"}, "t1", None),
    ],
)
def test_swarm_runs_token_is_its_own_tasks(
    env: dict[str, str], task_id: str, token: str | None
) -> None:
    assert _env.run_task_token(task_id, env) == token


def test_the_run_task_id_is_read_from_the_one_name() -> None:
    assert (_env.ENV_TASK_ID, _env.ENV_TASK_TOKEN) == ("SWARM_TASK_ID", "SWARM_TASK_TOKEN")
    assert _env.run_task_id({"SWARM_TASK_ID": "t1"}) == "t1"
    assert _env.run_task_id({"SWARM_TASK_ID": ""}) is None


_READ = re.compile(r"""environ(?:\.get\(|\[)\s*["']SWARM_TASK_(?:ID|TOKEN)["']""")


def test_only_env_reads_the_run_task_variables() -> None:
    """The CLI's commands ask ``_env`` (one rule): none reads the variables itself."""
    readers = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if _READ.search(path.read_text(encoding="utf-8"))
    ]
    assert readers == [], readers
