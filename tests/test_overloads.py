"""The typed overloads of the shells (``_overloads``) name exactly the parameters of the one
operation each stands for, with the same defaults: the Protocols cannot drift from it."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

import pytest

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm._overloads import AnswerReport, Claim, Report

OVERLOADED: dict[str, type[Any]] = {"answer": AnswerReport, "claim": Claim, "report": Report}


def _parameters(fn: Callable[..., Any]) -> dict[str, tuple[Any, Any]]:
    params = list(inspect.signature(fn).parameters.values())[1:]  # self, or the op's ctx
    return {p.name: (p.kind, p.default) for p in params}


@pytest.mark.parametrize("name", sorted(OVERLOADED))
def test_each_overload_names_the_operations_parameters(name: str) -> None:
    get_overloads = getattr(typing, "get_overloads", None)
    if get_overloads is None:
        pytest.skip("typing.get_overloads needs Python 3.11")
    op = getattr(Swarm, name).__wrapped__
    assert getattr(AsyncSwarm, name).__wrapped__ is op
    wanted = _parameters(op)
    variants = get_overloads(OVERLOADED[name].__call__)
    assert len(variants) >= 2
    for variant in variants:
        got = _parameters(variant)
        assert got.keys() == wanted.keys(), f"{name}: the overload's parameters drifted"
        for param, (kind, default) in got.items():
            assert kind == wanted[param][0], f"{name}({param}): another kind of parameter"
            if default is not inspect.Parameter.empty and default is not None:
                assert default == wanted[param][1], f"{name}({param}): another default"
