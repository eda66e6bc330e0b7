"""The seed's ``synthesize_findings(pass_name, synthesis, sources)`` takes any strings as
sources (the seed stored them as given): the findings of this swarm are cited, the others kept
as plain references on the text's last line. When none is a finding (every source a URL, a
document, a made-up id) it stored a synthesis citing no finding and said nothing: a synthesis
resting on no finding of its pass, which its caller almost never meant (the ids of another
swarm, the findings' contents for their ids...). It is still stored (the seed's shape: the id
returned), and an ``UncitedSources`` warning at the caller's line says it cites no finding."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from redis_swarm import Swarm, SwarmMemoryShard
from redis_swarm.roles import UncitedSources
from redis_swarm.roles._seed import REFERENCES

from ._handles import must


@pytest.fixture
def seed(redis_url: str) -> Iterator[tuple[Swarm, SwarmMemoryShard]]:
    with (
        Swarm(redis_url, swarm="test") as swarm,
        SwarmMemoryShard(url=redis_url, swarm="test", specialization="rules") as shard,
    ):
        yield swarm, shard


def test_references_alone_are_stored_with_a_warning_that_nothing_is_cited(
    seed: tuple[Swarm, SwarmMemoryShard],
) -> None:
    swarm, shard = seed
    sources = ["https://example.org/rfc 9110", "the notes", "https://example.org/rfc 9110"]
    with pytest.warns(UncitedSources) as said:
        sid = shard.synthesize_findings("Pass 1", "It holds.", sources)
    assert isinstance(sid, str)  # the seed's shape: the id
    [warning] = said
    message = str(warning.message)
    assert message.startswith(
        f"synthesize_findings('Pass 1', ...) stored {sid} citing no finding: none of its 2 "
        "sources is a finding of this swarm, so all are kept as plain references"
    ), message
    assert "finding_id of shard.get_all_findings()" in message
    assert warning.filename == __file__  # the caller's line
    stored = swarm.get_synthesis(sid)
    assert stored.sources == ()
    assert stored.text.endswith(f'{REFERENCES}["https://example.org/rfc 9110","the notes"]')
    # the same references beside a finding of this swarm: cited, and nothing to warn of
    swarm.post_task("q", "work", pass_name="Pass 1", parent=shard.agent_id)
    task = must(swarm.claim("q", worker="w1"))
    fid = swarm.report(task.id, task.token, {"summary": "found"}).id
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cited = shard.synthesize_findings("Pass 1", "It holds.", [fid, *sources])
    assert swarm.get_synthesis(cited).sources == (fid,)


def test_one_reference_and_ids_that_are_no_finding_say_so(
    seed: tuple[Swarm, SwarmMemoryShard],
) -> None:
    swarm, shard = seed
    with pytest.warns(UncitedSources) as one:
        sid = shard.synthesize_findings("Pass 1", "It holds.", ["a book"])
    assert "citing no finding: its source is no finding of this swarm, so it is kept as a " in (
        str(one[0].message)
    )
    assert swarm.get_synthesis(sid).sources == ()
    # finding-shaped ids that are no finding, and nothing else: one warning, saying both
    gone = ["f-01m90000000000000", "f-01m90000000000001"]
    with pytest.warns(UncitedSources) as shaped:
        sid = shard.synthesize_findings("Pass 1", "It holds.", [*gone, "a book"])
    [warning] = shaped
    message = str(warning.message)
    assert f"stored {sid} citing no finding: none of its 3 sources is a finding" in message
    assert f"; {gone[0]}, {gone[1]}: they are no finding of this swarm (" in message, message
    assert swarm.get_synthesis(sid).sources == ()
