"""How a retired question ended, said once: the marks ``lua/questions_retire.lua`` leaves in
an asker's ``asked`` index (OUTCOME_MARK) are the quarters ``RETIRED_OUTCOMES`` reads back,
each to a ``TaskStatus``, and ``RetiredAsk``, what ``retired_asked`` returns, is a record the
package exports (its ``outcome`` a ``TaskStatus``)."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import redis_swarm
from redis_swarm import RetiredAsk, TaskStatus, _models
from redis_swarm._ops.retire_questions import RETIRED_OUTCOMES, _retired_mark

LUA = Path(redis_swarm.__file__).parent / "lua" / "questions_retire.lua"


def _outcome_marks() -> dict[str, str]:
    source = LUA.read_text(encoding="utf-8")
    table = re.search(r"local OUTCOME_MARK = \{([^}]*)\}", source)
    assert table, "questions_retire.lua defines OUTCOME_MARK"
    return dict(re.findall(r"(\w+) = '([^']*)'", table[1]))


def test_lua_outcome_marks_agree_with_retired_outcomes() -> None:
    marks = _outcome_marks()
    assert marks == {"completed": ".25", "cancelled": ".5", "dead": ".75"}
    assert all(type(status) is TaskStatus for status in RETIRED_OUTCOMES.values())
    read_back = {TaskStatus(status): round(float(mark) * 4) for status, mark in marks.items()}
    assert read_back == {status: quarter for quarter, status in RETIRED_OUTCOMES.items()}
    for status, mark in marks.items():  # what the score the script writes reads back as
        read = _retired_mark(f"-1700000000123{mark}")
        assert read == RetiredAsk(1700000000123, TaskStatus(status))
        assert type(read.outcome) is TaskStatus
    assert _retired_mark("-1700000000123") == RetiredAsk(1700000000123, None)


def test_retired_ask_is_an_exported_record() -> None:
    assert "RetiredAsk" in _models.__all__ and "RetiredAsk" in redis_swarm.__all__
    assert RetiredAsk.__module__ == "redis_swarm._models"
    hints = typing.get_type_hints(RetiredAsk)
    assert hints["outcome"] == TaskStatus | None
    assert hints["at"] == int | None
