"""A name given to something made now (an agent registered, a task posted under an id, a
context published) may not begin with '-': a hint naming it (swarm agents deregister -x),
copied as is, would have the CLI read it as an option. A name read may still begin with one:
a record already stored under such a name stays reachable (the CLI names it after '--')."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from redis_swarm import ValidationError
from redis_swarm._validate import check_agent, check_id, check_name


@pytest.mark.parametrize(
    ("check", "kind"),
    [
        (lambda value, new: check_agent("agent name", value, new=new), "agent name"),
        (lambda value, new: check_id("task", value, new=new), "task id"),
        (lambda value, new: check_name("owner", value, new=new), "owner"),
    ],
)
def test_a_new_name_beginning_with_a_dash_is_refused_a_read_one_is_not(
    check: Callable[[str, bool], str], kind: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        check("-x", True)
    said = str(caught.value)
    assert said.startswith(f"{kind} '-x' begins with '-'"), said
    assert "read as an option" in said and "begin it with" in said, said
    assert check("-x", False) == "-x"  # (a lookup, a removal: stored records stay reachable)
    assert check("x-1", True) == "x-1" and check(".x", True) == ".x"
