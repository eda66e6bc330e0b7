"""What a user reads names what the user typed: no Python parameter names in the CLI's
messages (`dedupe_key`, where the option is --dedupe), no hand-made plurals, and a timed-out
ask whose dedupe key met a question with other text says so."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from redis_swarm import Swarm
from redis_swarm._hints import LIST_PASSES

from ._cli import Cli


@pytest.fixture
def lib(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        handle.publish_context("lib", "a small book\n", source="book.md")
        yield handle


def test_an_empty_dedupe_key_is_said_in_words_not_as_a_parameter(cli: Cli, lib: Swarm) -> None:
    out = cli("ask", "lib", "who?", "--dedupe", "", expect=None)
    assert out.code != 0 and "dedupe key is empty" in out.stderr, out
    assert "dedupe_key" not in out.stderr
    assert lib.queue_stats() == {}  # nothing was asked


def test_a_timed_out_ask_whose_key_met_other_text_says_so(cli: Cli, lib: Swarm) -> None:
    """The second asker's key meets the first's question (kept): its timeout says to ask
    again with the same key to collect the answer, which would be the answer to the first
    text: so it says the texts differ, and how to ask its own."""
    kept = cli("ask", "lib", "Who did it?", "--dedupe", "k", "--keep", "--timeout", "0.1",
               expect=3)  # fmt: skip
    assert "dedupe_key" not in kept.stderr and "the same dedupe key" in kept.stderr
    assert "other text" not in kept.stderr  # (its own text)
    other = cli("ask", "lib", "Where is the tea?", "--dedupe", "k", "--timeout", "0.1",
                expect=3)  # fmt: skip
    said = " ".join(other.stderr.split())
    assert "asked with other text ('Who did it?')" in said, said
    assert "ask with another key for an answer to yours" in said and "dedupe_key" not in said
    assert "the same dedupe key" not in said  # (that key collects the other text's answer)
    same = cli("ask", "lib", "Who did it?", "--dedupe", "k", "--timeout", "0.1", expect=3)
    assert "other text" not in same.stderr


def test_synth_create_of_an_unknown_pass_says_the_core_s_hint(cli: Cli, lib: Swarm) -> None:
    lib.register("shard", name="shard-a")
    out = cli("synth", "create", "--shard", "shard-a", "--pass", "P", "--text", "t",
              "--all-findings", expect=1)  # fmt: skip
    assert f"the passes: {LIST_PASSES};" in " ".join(out.stderr.split()), out
