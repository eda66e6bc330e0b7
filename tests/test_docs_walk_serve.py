"""``swarm serve`` refused for ``{session}`` without ``--session`` says it was refused, not
started, and what to do (its message read as if it ran)."""

from __future__ import annotations

from click.testing import CliRunner

from redis_swarm.cli import main


def test_serve_says_a_session_placeholder_without_session_was_refused() -> None:
    # (refused before any connection: the URL is never reached)
    result = CliRunner().invoke(
        main,
        ["--url", "redis://127.0.0.1:1", "serve", "lib", "--exec", "claude -p --resume {session}"],
    )
    assert result.exit_code == 2, result.output
    said = result.output.strip()
    assert said.count("\n") == 0, said
    assert said.startswith("error: not started: --exec names {session}"), said
    assert "add --session, or take {session} out of the command" in said, said
    assert "every question starts a new conversation" not in said  # (as if it ran)
