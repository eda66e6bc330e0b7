"""How a module of an optional extra that is not installed is said: one wording for the
packages that need one (``redis_swarm.a2a``, ``redis_swarm.a2a_server``) and the command
that serves one (``swarm a2a``)."""

from __future__ import annotations

__all__ = ["extra_missing", "needs_extra"]


def needs_extra(what: str, module: str | None, extra: str) -> str:
    """``what`` (a package or a command) needs ``module``, which ``extra`` installs."""
    return f"{what} needs {module}: pip install 'redis-swarm[{extra}]'"


def extra_missing(exc: ModuleNotFoundError, what: str, extra: str) -> ModuleNotFoundError | None:
    """``exc`` (a module not found while ``what`` was imported) said as ``needs_extra``, its
    ``name`` kept; None when the module missing is redis-swarm's own (a fault to raise as
    it is, not an extra to install)."""
    missing = (exc.name or "redis_swarm").partition(".")[0]
    if missing == "redis_swarm":
        return None
    return ModuleNotFoundError(needs_extra(what, missing, extra), name=exc.name)
