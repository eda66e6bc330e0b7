"""U+2028 and U+2029 (line and paragraph separators) break a line for readers that split
lines on them (Python's ``splitlines``, some terminals and editors) where no newline is: a
worker's description or finding could seem to end, and another line to begin, where it does
not. Every face shows them escaped, as it shows control characters and bidi overrides: the
CLI's text (``printable``) and the JSON the faces print (``shown_json``); a one-line label
refuses them, naming what it found. What is stored is unchanged."""

from __future__ import annotations

import json

import pytest

from redis_swarm import Swarm, ValidationError
from redis_swarm._codec import shown_json
from redis_swarm._printable import printable

from ._cli import Cli

DESCRIPTION = "check the parser\u2028FAKE: all tests passed\u2029done"


def test_printable_and_shown_json_escape_the_separators() -> None:
    assert printable(DESCRIPTION) == "check the parser\\u2028FAKE: all tests passed\\u2029done"
    raw = shown_json(json.dumps({"d": DESCRIPTION}, ensure_ascii=False))
    assert "\u2028" not in raw and "\u2029" not in raw
    assert "\\u2028" in raw and json.loads(raw)["d"] == DESCRIPTION


def test_the_cli_shows_a_stored_separator_escaped(cli: Cli, redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        task_id = swarm.post_task("q.scan", DESCRIPTION).id
        assert swarm.get_task(task_id).description == DESCRIPTION  # stored as given
    shown = cli("task", "show", task_id).stdout
    assert "\u2028" not in shown and "\\u2028" in shown
    assert len(shown.splitlines()) == len(shown.split("\n")) - shown.endswith("\n")
    as_json = cli("task", "show", task_id, "--json").stdout
    assert "\u2028" not in as_json and "\u2029" not in as_json
    assert json.loads(as_json)["description"] == DESCRIPTION


def test_a_label_with_a_separator_is_refused_naming_it(redis_url: str) -> None:
    refused = r"a line separator \(U\+2028\) at position 7"
    with Swarm(redis_url, swarm="test") as swarm, pytest.raises(ValidationError, match=refused):
        swarm.register("worker", name="a1", model="claude\u2028x")
