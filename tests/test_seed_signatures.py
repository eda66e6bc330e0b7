"""The role classes show every keyword they take (``inspect.signature``, ``help()``), from
one definition of the keywords that reach the server (``_Role.__init__``); a keyword a
class does not take is a TypeError in the name of the class called, saying what it takes.
No server is needed: a keyword is refused before anything connects."""

from __future__ import annotations

import inspect
import typing
from typing import Any

import pytest

from redis_swarm import (
    Coordinator,
    EphemeralWorker,
    MemoryShard,
    RedisSwarmCoordinator,
    SonnetCoordinator,
    SwarmMemoryShard,
    Worker,
)
from redis_swarm.roles import _base

# Each class, and the parameters it takes positionally, in order: the seed's, kept
# (docs/seed.md, /work/shared/SEED.md); every other one by name only.
POSITIONAL: dict[type[_base._Role], list[str]] = {
    SwarmMemoryShard: ["redis_host", "redis_port", "specialization"],
    EphemeralWorker: ["redis_host", "redis_port"],
    SonnetCoordinator: ["redis_host", "redis_port"],
    RedisSwarmCoordinator: ["redis_host", "redis_port", "redis_db"],
    MemoryShard: ["specialization"],
    Worker: ["redis_host", "redis_port"],
    Coordinator: ["redis_host", "redis_port"],
}
CLASSES = list(POSITIONAL)


def _connection() -> dict[str, inspect.Parameter]:
    """The keywords that reach the server, as their one definition has them."""
    params = inspect.signature(_base._Role.__init__).parameters.values()
    return {
        p.name: p
        for p in params
        if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
    }


def test_the_connection_keywords_are_those_the_docs_table_names() -> None:
    assert set(_connection()) == {
        "redis_host",
        "redis_port",
        "redis_password",
        "redis_username",
        "redis_db",
        "redis_ssl",
        "url",
        "swarm",
    }


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_the_signature_lists_every_connection_keyword(cls: type[_base._Role]) -> None:
    params = inspect.signature(cls).parameters
    assert not [p for p in params.values() if p.kind is p.VAR_KEYWORD], params
    assert not [p for p in params.values() if p.kind is p.VAR_POSITIONAL], params
    for name, base in _connection().items():
        assert name in params, (cls.__name__, name)
        assert params[name].default == base.default, (cls.__name__, name)
        assert params[name].annotation == base.annotation, (cls.__name__, name)
    positional = [
        p.name for p in params.values() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    ]
    assert positional == POSITIONAL[cls]
    help_text = f"{cls.__name__}{inspect.signature(cls)}"
    assert "redis_password" in help_text and "**" not in help_text


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_the_keywords_mypy_checks_are_the_spelt_out_ones(cls: type[_base._Role]) -> None:
    """The TypedDict each ``__init__`` unpacks (``**connect: Unpack[...]``, what mypy and
    editors check a call against) holds the connection keywords the class does not name
    itself, each of the type of its one definition."""
    init = next(c.__dict__["__init__"] for c in cls.__mro__ if "__init__" in c.__dict__)
    hints = typing.get_type_hints(init, include_extras=True)
    hints.pop("return")
    [kwargs] = [name for name, hint in hints.items() if typing.get_origin(hint) is _base.Unpack]
    [options] = typing.get_args(hints.pop(kwargs))
    own = set(hints)
    assert set(options.__optional_keys__) == set(_connection()) - own, cls.__name__
    assert not options.__required_keys__
    base = typing.get_type_hints(_base._Role.__init__)
    for name, kind in typing.get_type_hints(options).items():
        assert kind == base[name], (cls.__name__, name)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_a_misspelt_keyword_names_the_class_called(cls: type[_base._Role]) -> None:
    with pytest.raises(TypeError) as exc:
        cls(redis_host="127.0.0.1", redis_user="shard")
    said = str(exc.value)
    assert said.startswith(f"{cls.__name__}() got an unexpected keyword argument 'redis_user'")
    assert "_Role" not in said
    assert "did you mean 'redis_username'?" in said
    for name in inspect.signature(cls).parameters:
        assert name in said, (name, said)


def test_a_misspelt_own_keyword_and_several_at_once() -> None:
    with pytest.raises(TypeError, match=r"^EphemeralWorker\(\) .*'worker'.*'worker_id'"):
        EphemeralWorker(worker="w-1")  # type: ignore[call-arg]
    with pytest.raises(TypeError) as exc:
        SonnetCoordinator(agent="c", passwd="x")  # type: ignore[call-arg]
    said = str(exc.value)
    assert said.startswith("SonnetCoordinator() got unexpected keyword arguments 'agent', 'passwd'")
    assert "agent_id" in said


def test_a_subclass_is_named_in_its_own_name() -> None:
    class Shard(SwarmMemoryShard):
        pass

    assert inspect.signature(Shard) == inspect.signature(SwarmMemoryShard)
    with pytest.raises(TypeError, match=r"^Shard\(\) got an unexpected keyword argument"):
        Shard(redis_sll=True)  # type: ignore[call-arg]


def test_a_subclass_with_its_own_keywords_lists_its_bases_too() -> None:
    """A user's subclass that passes ``**kwargs`` on: the error lists its own keywords and
    those its base takes (it listed only its own, as if it took nothing else)."""

    class Mine(EphemeralWorker):
        def __init__(self, job: str, **kwargs: Any) -> None:
            self.job = job
            super().__init__(**kwargs)

    with pytest.raises(TypeError) as exc:
        Mine("j", redis_pasword="x")
    said = str(exc.value)
    assert said.startswith("Mine() got an unexpected keyword argument 'redis_pasword'"), said
    assert "did you mean 'redis_password'" in said
    assert "it takes job, redis_host, redis_port, worker_id" in said
