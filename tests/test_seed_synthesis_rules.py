"""What a synthesis may cite, one rule in the core for every face: only stored findings
(NotFound), of its own pass or of no pass (ValidationError naming each other pass, unless
``across_passes``), and at least one (unless ``cites_none``). The seed's
``synthesize_findings`` keeps its looser contract on top (any string as a reference, its free
pass labels), and says which finding-shaped ids it could not cite (``UncitedSources``)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from redis_swarm import (
    MemoryShard,
    NotFound,
    Swarm,
    SwarmMemoryShard,
    ValidationError,
)
from redis_swarm._keys import Keys
from redis_swarm.roles import UncitedSources
from redis_swarm.roles._seed import REFERENCES

from ._cli import Cli
from ._handles import must

SHARD = "shard-1"


def _finding(swarm: Swarm, pass_name: str | None, *, parent: str | None = SHARD) -> str:
    """A finding of a task of ``pass_name`` (None: outside any pass), reported now."""
    swarm.post_task("q", f"work of {pass_name}", pass_name=pass_name, parent=parent)
    task = must(swarm.claim("q", worker="w1"))
    return swarm.report(task.id, task.token, {"summary": f"found in {pass_name}"}).id


# --- the core: another pass's findings are refused, naming their passes


def test_a_synthesis_may_not_cite_another_pass_s_findings(swarm: Swarm) -> None:
    ours, theirs, free = _finding(swarm, "Pass 1"), _finding(swarm, "Pass 2"), _finding(swarm, None)
    with pytest.raises(ValidationError) as refused:
        swarm.synthesize(SHARD, "Pass 1", "mixed", [ours, theirs])
    said = str(refused.value)
    assert f'finding {theirs} (of pass "Pass 2") is not of pass "Pass 1"' in said
    assert "nothing was stored" in said and "through that pass's synthesis" in said
    assert swarm.syntheses().items == ()
    # its own pass's findings, and those of work posted outside any pass, are cited
    stored = swarm.synthesize(SHARD, "Pass 1", "ours", [ours, free])
    assert stored.sources == (ours, free)
    # a synthesis spanning passes says so
    final = swarm.synthesize(SHARD, "Final", "both", [ours, theirs], across_passes=True)
    assert final.sources == (ours, theirs)
    with pytest.raises(ValidationError, match="across_passes must be True or False"):
        swarm.synthesize(SHARD, "Final", "both", [ours], across_passes="yes")  # type: ignore[arg-type]


def test_the_refusal_names_a_few_passes_and_counts_the_rest(swarm: Swarm) -> None:
    others = [_finding(swarm, f"Pass {n}") for n in range(2, 9)]
    with pytest.raises(ValidationError) as refused:
        swarm.synthesize(SHARD, "Pass 1", "all of them", others)
    said = str(refused.value)
    assert said.startswith(f'findings {others[0]} (of pass "Pass 2"), ')
    assert f'{others[4]} (of pass "Pass 6") and 2 more are not of pass "Pass 1"' in said
    assert others[5] not in said


def test_a_finding_of_its_pass_its_index_misses_is_read_and_cited(swarm: Swarm, raw: Any) -> None:
    ours = _finding(swarm, "Pass 1")
    raw.zrem(Keys("test").findings_by("pass", "Pass 1"), ours)  # (as a damaged index would)
    assert swarm.synthesize(SHARD, "Pass 1", "ours", [ours]).sources == (ours,)


def test_a_missing_finding_is_still_not_found_first(swarm: Swarm) -> None:
    theirs = _finding(swarm, "Pass 2")
    with pytest.raises(NotFound, match="no finding f-nothere"):
        swarm.synthesize(SHARD, "Pass 1", "text", [theirs, "f-nothere"])


def test_the_typed_shard_gets_the_core_s_rule(redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm, MemoryShard(url=redis_url, swarm="test") as shard:
        theirs = _finding(swarm, "Pass 2", parent=shard.agent_id)
        with pytest.raises(ValidationError, match='is not of pass "Pass 1"'):
            shard.synthesize("Pass 1", "text", [theirs])


# --- the core: a synthesis citing nothing is refused unless meant


def test_a_synthesis_citing_no_finding_is_refused_unless_meant(swarm: Swarm) -> None:
    with pytest.raises(ValidationError) as refused:
        swarm.synthesize(SHARD, "Pass 1", "nothing", [])
    said = str(refused.value)
    assert "cites no finding, so nothing was stored" in said and "cites_none=True" in said
    assert swarm.syntheses().items == ()
    empty = swarm.synthesize(SHARD, "Pass 1", "the pass found nothing", [], cites_none=True)
    assert empty.sources == () and swarm.get_synthesis(empty.id) == empty
    ours = _finding(swarm, "Pass 1")
    with pytest.raises(ValidationError, match="cites_none=True stores a synthesis citing no"):
        swarm.synthesize(SHARD, "Pass 1", "both", [ours], cites_none=True)


# --- the seed's synthesize_findings


@pytest.fixture
def seed(redis_url: str) -> Iterator[tuple[Swarm, SwarmMemoryShard]]:
    with (
        Swarm(redis_url, swarm="test") as swarm,
        SwarmMemoryShard(url=redis_url, swarm="test", specialization="rules") as shard,
    ):
        yield swarm, shard


def test_the_seed_says_which_finding_ids_it_could_not_cite(
    seed: tuple[Swarm, SwarmMemoryShard],
) -> None:
    swarm, shard = seed
    real = _finding(swarm, "Pass 1", parent=shard.agent_id)
    gone = "f-01m90000000000000"  # shaped as this swarm's ids, but no finding
    with pytest.warns(UncitedSources) as said:
        sid = shard.synthesize_findings("Pass 1", "It holds.", [real, gone, "https://x.org/a b"])
    [warning] = said
    assert f"stored {sid} without citing {gone}: it is no finding of this swarm" in str(
        warning.message
    )
    assert warning.filename == __file__  # the caller's line
    stored = swarm.get_synthesis(sid)
    assert stored.sources == (real,)
    assert stored.text == f'It holds.\n\n{REFERENCES}["{gone}","https://x.org/a b"]'


def test_the_seed_stores_a_synthesis_of_references_only_as_its_example_does(
    seed: tuple[Swarm, SwarmMemoryShard],
) -> None:
    swarm, shard = seed
    with pytest.warns(UncitedSources, match="finding_12345, finding_67890: they are no finding"):
        sid = shard.synthesize_findings("Pass 1", "3 patterns", ["finding_12345", "finding_67890"])
    assert swarm.get_synthesis(sid).sources == ()
    with pytest.raises(ValidationError, match=r"cites no finding.*pass the ids it rests on"):
        shard.synthesize_findings("Pass 1", "all of it", [])  # the core's refusal


def test_the_seed_cites_across_its_free_pass_labels(seed: tuple[Swarm, SwarmMemoryShard]) -> None:
    """The seed's own flow: tasks of "Pass 1: Signal Capture", a synthesis of "Pass 1"."""
    swarm, shard = seed
    found = _finding(swarm, "Pass 1: Signal Capture", parent=shard.agent_id)
    sid = shard.synthesize_findings("Pass 1", "milkrun applies", [found])
    assert swarm.get_synthesis(sid).sources == (found,)


def test_swarm_synth_create_refuses_another_pass_unless_across_passes(
    redis_url: str, cli: Cli
) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        ours, theirs = _finding(swarm, "Pass 1"), _finding(swarm, "Pass 2")
    args = ("synth", "create", "--shard", SHARD, "--text", "both")
    cited = ("--finding", ours, "--finding", theirs)
    out = cli(*args, "--pass", "Pass 1", *cited, expect=2)
    assert f'finding {theirs} (of pass "Pass 2") is not of pass "Pass 1"' in out.stderr
    assert "--across-passes" in out.stderr
    stored = cli.json(*args, "--pass", "Final", *cited, "--across-passes")
    assert stored["sources"] == [ours, theirs]


def test_swarm_synth_create_cites_none_and_says_a_pass_name_s_edge_whitespace(
    cli: Cli,
) -> None:
    """A pass that found nothing is synthesized with --cites-none (the core's cites_none; the
    CLI had no way to); --all-findings of a pass name ending in a space says that, not "no
    finding" (a name no pass can have been posted under since the rule)."""
    args = ("synth", "create", "--shard", SHARD, "--text", "nothing found")
    out = cli(*args, "--pass", "P1", expect=2)
    assert "--cites-none" in out.stderr
    stored = cli.json(*args, "--pass", "P1", "--cites-none")
    assert stored["sources"] == [] and stored["pass_name"] == "P1"
    out = cli(*args, "--pass", "P1 ", "--all-findings", expect=2)
    assert "'P1 ' ends with a space" in out.stderr, out.stderr
    # beside --all-findings: every finding when there are some, none when there are none
    with Swarm(cli.url, swarm="test") as swarm:
        found = _finding(swarm, "P2")
    both = ("--all-findings", "--cites-none")
    assert cli.json(*args, "--pass", "P2", *both)["sources"] == [found]
    assert cli.json(*args, "--pass", "P3", *both)["sources"] == []


# The seed's ``synthesize_findings(pass_name, synthesis, sources)`` takes any strings as
# sources (the seed stored them as given): the findings of this swarm are cited, the others kept
# as plain references on the text's last line. When none is a finding (every source a URL, a
# document, a made-up id) it stored a synthesis citing no finding and said nothing: a synthesis
# resting on no finding of its pass, which its caller almost never meant (the ids of another
# swarm, the findings' contents for their ids...). It is still stored (the seed's shape: the id
# returned), and an ``UncitedSources`` warning at the caller's line says it cites no finding.


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
