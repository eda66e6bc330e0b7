"""A pass name written now may not begin or end with whitespace ("Pass 1\\n" would be
another pass than "Pass 1", alike in a listing): refused at the edge (``check_label``'s
``new``), saying so; a pass name read stays free, so what was stored stays reachable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from redis_swarm import Swarm, SwarmMemoryShard, ValidationError
from redis_swarm._keys import Keys, label_id
from redis_swarm._validate import check_label

from ._handles import must
from ._raw import raw_client


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("Pass 1\n", "ends with a line break"),
        ("Pass 1\r\n", "ends with a line break"),
        (" Pass 1", "begins with a space"),
        ("Pass 1\t", "ends with a tab"),
        ("Pass 1\u2028", "ends with whitespace (U+2028)"),
    ],
)
def test_a_new_pass_name_with_whitespace_at_an_end_is_refused(name: str, said: str) -> None:
    with pytest.raises(ValidationError) as refused:
        check_label("pass name", name, new=True)
    message = str(refused.value)
    assert message.startswith(f"the pass name {name!r} {said}: it would be another pass name")
    assert "give it without whitespace at either end" in message
    assert check_label("pass name", name) == name  # a look-up may name it
    assert check_label("pass name", "a b \u00e9 c", new=True)  # inside: any printable text
    with pytest.raises(ValidationError, match="control character"):  # (not a tab, nor ESC)
        check_label("pass name", "a\tb \x1b[0m c", new=True)


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as made:
        yield made


def test_a_synthesis_of_a_pass_name_with_a_newline_is_refused(redis_url: str, swarm: Swarm) -> None:
    swarm.post_task("q", "t", pass_name="Pass 1")
    task = must(swarm.claim("q", worker="w1"))
    fid = swarm.report(task.id, task.token, {"summary": "s"}).id
    with pytest.raises(ValidationError, match=r"'Pass 1\\n' ends with a line break"):
        swarm.synthesize("shard-1", "Pass 1\n", "text", [fid])
    with (
        SwarmMemoryShard(url=redis_url, swarm="test", specialization="names") as shard,
        pytest.raises(ValidationError, match="ends with a line break"),
    ):
        shard.synthesize_findings("Pass 1\n", "text", [fid])
    assert swarm.syntheses().items == ()
    assert swarm.findings(pass_name="Pass 1\n").items == ()  # a read: no refusal


def test_a_task_posted_with_a_pass_name_ending_in_a_newline_is_refused(redis_url: str) -> None:
    with (
        SwarmMemoryShard(url=redis_url, swarm="test", specialization="names") as shard,
        pytest.raises(ValidationError, match="ends with a line break"),
    ):
        shard.spawn_worker_task("q", "t", pass_name="Pass 1\n")


def test_a_pass_posted_to_before_the_rule_may_still_be_synthesized(
    redis_url: str, swarm: Swarm
) -> None:
    """A pass an older version posted to under a name ending in a newline (its pass counters
    hold that name) is still synthesized and asked for: the rule stops new such passes, it
    does not strand old ones. A name no pass holds is refused as before."""
    old = "Old pass\n"
    with raw_client(redis_url) as raw:  # (as an older version's post left it)
        pid = label_id(old)
        raw.hset(Keys("test").pass_counts, mapping={pid: old, f"{pid}|completed": 0})
    swarm.register("shard", name="shard-1")
    stored = swarm.synthesize("shard-1", old, "it found nothing", [], cites_none=True)
    assert stored.pass_name == old
    asked = swarm.request_synthesis("shard-1", old, "sum it up", sender="lead")
    assert asked.data is not None and asked.data["pass_name"] == old
    for refused in (
        lambda: swarm.synthesize("shard-1", "New pass\n", "t", [], cites_none=True),
        lambda: swarm.request_synthesis("shard-1", "New pass\n", "sum it up", sender="lead"),
    ):
        with pytest.raises(ValidationError, match="ends with a line break"):
            refused()
