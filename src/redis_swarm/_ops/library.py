"""The ``redis_swarm`` function library a server holds, read without ever loading one (what
``swarm doctor`` shows of it, and what tells an admin that another version would be
replaced): FUNCTION LIST where the user may, else the ping function's answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._errors import ConnectionFailed, PermissionDenied, SwarmError
from .._protocol import Call, Cmd, OpContext, Operation
from .._replies import reply_fields
from .._scripts import (
    LIBRARY,
    LOAD_AS_ADMIN,
    NO_FUNCTIONS,
    STALE_LIBRARY,
    code_version,
    held_version,
    library,
)

__all__ = ["UPGRADING_A_FLEET", "LibraryState", "library_state"]


# Where docs/deployment.md says how to move a fleet to one version (doctor's advice names it).
UPGRADING_A_FLEET = "docs/deployment.md, 'Upgrading a fleet'"


# The library row of a server that holds none.
_NOT_LOADED = "not loaded: swarm up loads it"


@dataclass(frozen=True)
class LibraryState:
    """The ``redis_swarm`` function library the server holds, against this install's
    (``expected``), as ``swarm doctor`` reads it without ever loading one: ``held`` is the
    version each master holds (address -> version; one entry "" on a single server; None:
    not loaded there). ``functions`` False: the server has no Functions (Redis < 7.0,
    scripts run by EVALSHA); ``visible`` False: this user may neither list the library
    nor call its ping function (``held`` then empty); ``loadable`` False: this user may not
    load it (it may not list it: a role 'swarm acl' makes, never an admin)."""

    expected: str
    held: dict[str, str | None]
    functions: bool = True
    visible: bool = True
    loadable: bool = True

    @property
    def versions(self) -> list[str]:
        """The versions held, each once (sorted); a master without the library adds none."""
        return sorted({version for version in self.held.values() if version is not None})

    @property
    def other_versions(self) -> str | None:
        """The versions held other than this install's, joined by 'and' (None: none)."""
        others = [version for version in self.versions if version != self.expected]
        return " and ".join(others) or None

    @property
    def current(self) -> bool:
        """Every master holds this install's version (``load_functions`` then loads nothing:
        FUNCTION LOAD is a write, which a master short of good replicas refuses)."""
        return (
            self.functions
            and bool(self.held)
            and all(version == self.expected for version in self.held.values())
        )

    @property
    def missing(self) -> list[str]:
        """The masters without the library ("" on a single server)."""
        return sorted(where for where, version in self.held.items() if version is None)

    @property
    def row(self) -> str:
        """The doctor's "function library" row."""
        if not self.functions:
            return "none: the server has no Functions (Redis < 7.0): scripts run by EVALSHA"
        if not self.visible:
            return (
                "unknown: this user may neither list the library (FUNCTION LIST) nor call "
                "its rs_ping function"
            )
        versions = self.versions
        if not versions:
            unloadable = self.unloadable
            return _NOT_LOADED if unloadable is None else f"not loaded: {unloadable}"
        shown = " and ".join(versions)
        text = (
            f"version {shown} (this install's)"
            if versions == [self.expected]
            else f"version {shown}; this install's is {self.expected}"
        )
        if self.missing:
            text += f"; not loaded on {', '.join(self.missing)}"
        return text

    @property
    def unloadable(self) -> str | None:
        """Why every call of this user fails, the library being missing and this user
        unable to load it (None: it is held, or this user may load it)."""
        if not self.functions or not self.visible or self.loadable or not self.missing:
            return None
        return f"this user cannot load it: {LOAD_AS_ADMIN}"

    @property
    def row_on_replica(self) -> str:
        """The row when the URL names a read-only replica (``ServerInfo.replica_warning``),
        which refuses the load: 'swarm up' with the master's URL is offered."""
        if self.versions or not self.functions or not self.visible:
            return self.row
        return "not loaded: 'swarm up' with the master's URL loads it (see the warnings)"

    @property
    def row_refusing_writes(self) -> str:
        """The row while the master refuses every write for want of good replicas
        (``swarm doctor``'s min_replicas_to_write row says so): FUNCTION LOAD is a write, so
        'swarm up' is not offered."""
        if self.versions or not self.functions or not self.visible:
            return self.row
        return (
            "not loaded: 'swarm up' cannot load it while the master refuses writes for want "
            "of good replicas (see min_replicas_to_write)"
        )

    @property
    def warning(self) -> str | None:
        """What to do when the server holds another version than this install's (None: it
        holds this one, none at all, or cannot be read). Loading this one would stop every
        machine on the other: doctor never loads it, and says so."""
        others = self.other_versions
        if not self.functions or others is None:
            return None
        return (
            f"the server holds the {LIBRARY} function library of version "
            f"{others}, and this redis-swarm's is version {self.expected}: "
            "another machine (or another install) runs another redis-swarm version, and "
            "every machine of a swarm must run the same one. Install here the version the "
            "other machines run; or upgrade them all (every process of the swarm stopped), "
            f"then run 'swarm up' once with an admin user ({UPGRADING_A_FLEET}). Running "
            "'swarm up' here now, or any command as an admin, would load this version and "
            "stop the other machines' commands"
        )


def library_state(ctx: OpContext) -> Operation[LibraryState]:
    """The library each master holds: FUNCTION LIST, where this user may run it (an admin;
    on a cluster it asks every master); else the ping script, called never to load (its
    function is refused when another version, or none, is held: the refusal names the
    version held, ``held_version``)."""
    mine = library().version
    try:
        listed: Any = yield Cmd("FUNCTION LIST", "LIBRARYNAME", LIBRARY, "WITHCODE")
    except PermissionDenied:  # a role may not list every library's code: it asks its own
        return (yield from _library_probed(mine))
    except ConnectionFailed:
        raise
    except SwarmError as exc:
        if NO_FUNCTIONS.search(str(exc)):
            return LibraryState(mine, {}, functions=False)
        raise
    per_node = listed if isinstance(listed, dict) else {"": listed}
    return LibraryState(mine, {where: _listed_version(reply) for where, reply in per_node.items()})


def _listed_version(reply: Any) -> str | None:
    """The version in one server's FUNCTION LIST ... WITHCODE reply (None: not loaded)."""
    for entry in reply or []:
        fields = reply_fields(entry)
        if fields.get("library_name") == LIBRARY:
            return code_version(fields.get("library_code", "")) or "?"
    return None


def _library_probed(mine: str) -> Operation[LibraryState]:
    """The library as its rs_ping function answers a caller of version ``mine``: it runs
    (this version is held), or is refused as stale (the version held) or not found."""
    try:
        yield Call("ping", (), (0,), load=False)
    except ConnectionFailed:
        raise
    except PermissionDenied:
        return LibraryState(mine, {}, visible=False)
    except SwarmError as exc:
        said = str(exc)
        if NO_FUNCTIONS.search(said):
            return LibraryState(mine, {}, functions=False)
        stale = said.find(STALE_LIBRARY)
        if stale >= 0:
            return LibraryState(mine, {"": held_version(said[stale:]) or "?"}, loadable=False)
        if _NOT_FOUND in said:
            return LibraryState(mine, {"": None}, loadable=False)
        raise
    return LibraryState(mine, {"": mine}, loadable=False)


# What Redis answers an FCALL of a function no library holds.
_NOT_FOUND = "Function not found"
