"""``Swarm.from_env("redis://...")`` (a URL passed as to the constructor) is refused in the
words of the class called, with the way to pass it: it raised Python's "_Shell.from_env()
takes 1 positional argument but 2 were given", which names a private class and no way out."""

from __future__ import annotations

import pytest

from redis_swarm import AsyncSwarm, Swarm


@pytest.mark.parametrize("shell", [Swarm, AsyncSwarm], ids=lambda c: c.__name__)
def test_a_positional_url_says_how_to_pass_it(
    shell: type[Swarm] | type[AsyncSwarm], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SWARM_URL", raising=False)
    name = shell.__name__
    with pytest.raises(TypeError) as caught:
        shell.from_env("redis://x")
    said = str(caught.value)
    assert said.startswith(f"{name}.from_env() takes no positional argument"), said
    assert f"{name}(url)" in said and "SWARM_URL" in said and "swarm=" in said, said
    assert "_Shell" not in said, said
