"""The swarm's streams as ``swarm doctor`` checks them (``check_streams``): the event log, the
broadcasts and the inboxes of the agents heard from last, each named when a client-chosen id
put its last id past the server's clock or at the largest id a stream can hold (every write to
it then refused), with how to repair it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._codec import MAX_ISO_MS, counted, iso
from .._errors import ConnectionFailed, PermissionDenied
from .._printable import redis_cli_word, shown_name
from .._protocol import WRONG_TYPE, Batch, Cmd, OpContext, Operation, past_wrong_type
from .._replies import reply_map, text

__all__ = [
    "ACL_LIMITS",
    "ANY_SERVER",
    "INBOXES_CHECKED",
    "MAX_STREAM_ID",
    "REPAIRER",
    "STREAM_SKEW_MS",
    "DamagedStream",
    "StreamCheck",
    "check_streams",
]


# The largest id a stream can hold: once a stream's last id is this, Redis refuses every XADD
# to it ("The stream has exhausted the last possible ID"), even after its entries are trimmed.
MAX_STREAM_ID = "18446744073709551615-18446744073709551615"
# How far past the server's clock a stream's last id may be before ``swarm doctor`` names it:
# Redis makes ids from its own clock, so only an id a client chose (XADD KEY ID ...) gets that
# far ahead; an hour leaves room for a clock stepped back (NTP, a failover to a server whose
# clock is behind).
STREAM_SKEW_MS = 3_600_000
# The inboxes ``swarm doctor`` reads: those of the agents heard from last, at most this many
# (one batch of XINFO STREAM: a swarm of thousands of agents is not read whole).
INBOXES_CHECKED = 100
# Where docs/security.md says what a worker can do that Redis ACLs cannot stop (the warnings
# name it).
ACL_LIMITS = "docs/security.md, 'What Redis ACLs cannot stop'"
# Who may repair a stream: never a worker (the role that can damage one).
REPAIRER = "as a shard, coordinator or admin user"
# The start of the redis-cli command of a repair where the caller names no server: the
# server's URL to fill in (``swarm doctor`` gives the words of its own URL, ``warning_for``).
ANY_SERVER = "redis-cli -u URL "


@dataclass(frozen=True)
class DamagedStream:
    """A stream of the swarm whose last id is past the server's clock by more than
    ``STREAM_SKEW_MS``, or the largest a stream can hold (``exhausted``), or whose key holds
    another type than a stream (``wrong_type``, ``last_id`` empty). ``kind``: "events",
    "broadcast" or "inbox" (``agent``'s). An agent is named, and its inbox's key shown, by
    ``shown_name``: a worker may ZADD any name to the presence set, and XADD to its inbox."""

    kind: str
    key: str
    last_id: str
    server_time_ms: int
    agent: str | None = None
    wrong_type: bool = False

    @property
    def exhausted(self) -> bool:
        """Redis refuses every append to it from now on."""
        return self.last_id == MAX_STREAM_ID

    @property
    def refuses(self) -> bool:
        """Every append to it fails: exhausted, or not a stream."""
        return self.exhausted or self.wrong_type

    @property
    def fails(self) -> bool:
        """The swarm's event log takes no event from now on: the log is lost, and every message
        refused (its id is its event's), so doctor fails."""
        return self.kind == "events" and self.refuses

    @property
    def name(self) -> str:
        if self.kind == "events":
            return "the event log"
        if self.kind == "broadcast":
            return "the broadcasts"
        return f"the inbox of agent {self._agent}"

    @property
    def _agent(self) -> str:
        """The agent whose inbox it is, as a line names it (``shown_name``)."""
        return shown_name(self.agent or "")

    @property
    def _key(self) -> str:
        """The stream's key as a line shows it: as it is, or quoted and escaped when it holds
        no printable one-line text (an agent's name in it, ``shown_name``)."""
        return shown_name(self.key, label=True)

    def _delete(self, cli: str) -> str:
        """The redis-cli command that deletes the stream's key, to copy (``cli``: its start,
        which reaches the server and logs in): the key single-quoted as it is when it is
        printable on one line (``_key``) and holds no quote, else written for
        ``--quoted-input`` (``redis_cli_word``: shown safe, pasted as it is shown); a key no
        command line gives (no UTF-8) is said so."""
        if self._key == self.key and "'" not in self.key:
            return f"{cli}DEL '{self.key}'"
        word = redis_cli_word(self.key)
        if word is None:
            return (
                f"DEL {self._key} from a program (the key is no UTF-8 text: no redis-cli "
                "command line gives it)"
            )
        return f"{cli}--quoted-input DEL {word}"

    @property
    def warning(self) -> str:
        """What is wrong with it, what it means, and the repair (never a worker's), its
        redis-cli command on a server to name (``ANY_SERVER``)."""
        return self.warning_for(ANY_SERVER)

    def warning_for(self, cli: str) -> str:
        """``warning``, its redis-cli command started with ``cli`` (``_durability.redis_cli``
        of the URL: the server reached, and a user who may run it)."""
        whose = {"events": "the swarm's event log", "broadcast": "the swarm's broadcast stream"}
        what = whose.get(self.kind, f"the inbox of agent {self._agent}")
        if not self.refuses:
            return self._ahead_warning(what)
        effect = {
            "events": "the log is lost from then on, and every message and broadcast is "
            "refused (a message's id is its event's; its sender gets the error)",
            "broadcast": "every broadcast fails (its sender gets the error)",
        }.get(self.kind, f"every message sent to {self._agent} fails (its sender gets the error)")
        if self.wrong_type:
            state = (
                f"{what} ({self._key}) is not a stream: the key holds another type, and Redis "
                "refuses every append to it"
            )
            cause = (
                "Something other than redis-swarm wrote that key (a command typed by hand, "
                "another program sharing the database, or a worker where Redis has no ACL "
                f"selectors, before 7.0: {ACL_LIMITS})"
            )
        else:
            state = (
                f"{what} ({self._key}) is poisoned: its last id is the largest a stream can "
                f"hold ({self.last_id}), and Redis refuses every append to it from now on, "
                "even once it is emptied"
            )
            cause = (
                "A client wrote an entry with that id itself (XADD KEY ID ...), as a worker "
                f"may: Redis ACLs cannot restrict a command's arguments ({ACL_LIMITS})"
            )
        if self.wrong_type:
            repair = (
                f"to repair, {REPAIRER}: {self._delete(cli)} (it holds nothing "
                "of the swarm's), after reading it (TYPE, then the command of that type) if "
                "another program may own it"
            )
        elif self.kind == "inbox":
            repair = (
                f"to repair, {REPAIRER}: swarm agents deregister {self._agent} (its inbox goes, "
                "the unread messages with it, and where it had read to), then let the agent "
                "register again"
            )
        else:
            repair = f"to repair, {REPAIRER}: {self._delete(cli)}"
            if self.kind == "events":
                repair += (
                    " (the events it holds go with it; the swarm's records and counters do "
                    "not depend on them), then restart what follows the log (swarm watch, the "
                    "dashboard, swarm a2a: its push dispatcher keeps its place in the log)"
                )
            else:
                repair += (
                    " (the broadcasts it holds go with it), then deregister the agents that "
                    "read the bad entry (swarm agents deregister "
                    "AGENT; they register again): they keep their place past it "
                    "and would see no broadcast again"
                )
        return (
            f"{state}: {effect}. {cause}; {repair}; and if the swarm's "
            "workers are not all trusted, rotate the worker password (swarm acl --role worker "
            "--user NAME --apply)"
        )

    def _ahead_warning(self, what: str) -> str:
        """A last id ahead of the clock, not the largest: appends go on, and it may be no
        tampering at all (the server's clock is behind the one that wrote it)."""
        ms = int(self.last_id.partition("-")[0])
        when = f", {iso(ms)}" if ms <= MAX_ISO_MS else ""
        return (
            f"{what} ({self._key}) has a last id {_ahead(ms - self.server_time_ms)} past the "
            f"server's clock ({self.last_id}{when}): appends still work, but every entry "
            "appended since takes an id after it, which no longer says when it was written "
            "(reads by time misplace them) until the clock passes it. Either the server's "
            "clock is behind the one that wrote it (a failover or a restore onto a host whose "
            "clock is behind, a clock stepped back: check the server's time), or a client "
            "wrote an entry with that id itself (XADD KEY ID ..., as a worker may: Redis ACLs "
            f"cannot restrict a command's arguments, {ACL_LIMITS}). Leaving it is safe: no "
            "message or event is lost or misordered; deleting the stream (which loses what it "
            "holds) is needed only if its last id reaches the largest a stream can hold"
        )


def _ahead(ms: int) -> str:
    """How far ahead, to the nearest hour (under two days), day (under two years) or year."""
    hours = round(ms / 3_600_000)
    if hours < 48:
        return counted(hours, "hour")
    days = round(ms / 86_400_000)
    if days < 730:
        return counted(days, "day")
    return counted(round(ms / (365 * 86_400_000)), "year")


@dataclass(frozen=True)
class StreamCheck:
    """The swarm's streams as ``swarm doctor`` reads them (``check_streams``): the event log,
    the broadcasts, and the inboxes of the ``INBOXES_CHECKED`` agents heard from last
    (``inboxes`` of them exist; ``agents`` are known). ``refused``: why they were not read
    (this user may not run XINFO STREAM, or may not read the swarm)."""

    damaged: tuple[DamagedStream, ...] = ()
    inboxes: int = 0
    agents: int = 0
    refused: str | None = None

    @property
    def fails(self) -> bool:
        return any(stream.fails for stream in self.damaged)

    @property
    def row(self) -> str:
        """The doctor's ``streams`` row."""
        if self.refused is not None:
            return f"not read: {self.refused}"
        read = f"the event log, the broadcasts, {counted(self.inboxes, 'inbox', 'inboxes')}"
        if self.agents > INBOXES_CHECKED:
            read += f" (of the {INBOXES_CHECKED} agents heard from last; {self.agents:,} known)"
        if not self.damaged:
            return f"ok: {read}"
        names = ", ".join(stream.name for stream in self.damaged)
        return f"damaged: {names} (see the warnings); read: {read}"


def check_streams(ctx: OpContext, server_time_ms: int) -> Operation[StreamCheck]:
    """``StreamCheck``: each stream's last-generated-id (XINFO STREAM: the last id a stream
    gave, which its entries trimmed or emptied do not lower) against the server's clock.
    Three round trips: the agents heard from last, which streams exist, their XINFO. Plain
    commands only, never a script (doctor loads nothing)."""
    keys = ctx.keys
    try:
        known, newest = yield Batch(
            (
                Cmd("ZCARD", keys.presence),
                Cmd("ZREVRANGE", keys.presence, 0, INBOXES_CHECKED - 1),
            )
        )
        agents = [text(agent) for agent in newest]
        streams = [("events", keys.events, None), ("broadcast", keys.broadcast, None)] + [
            ("inbox", keys.inbox(agent), agent) for agent in agents
        ]
        exists = yield Batch(tuple(Cmd("EXISTS", key) for _, key, _ in streams))
        present = [stream for stream, there in zip(streams, exists, strict=True) if int(there)]
        infos = yield from _stream_infos([key for _, key, _ in present])
    except ConnectionFailed:
        raise
    except PermissionDenied as exc:
        return StreamCheck(refused=str(exc))
    damaged = []
    for (kind, key, agent), info in zip(present, infos, strict=True):
        if info is WRONG_TYPE:
            damaged.append(DamagedStream(kind, key, "", server_time_ms, agent, wrong_type=True))
            continue
        last = text(reply_map(info).get("last-generated-id", "0-0")) if info else "0-0"
        ms = int(last.partition("-")[0])
        if last == MAX_STREAM_ID or ms > server_time_ms + STREAM_SKEW_MS:
            damaged.append(DamagedStream(kind, key, last, server_time_ms, agent))
    inboxes = sum(1 for kind, _, _ in present if kind == "inbox")
    return StreamCheck(tuple(damaged), inboxes=inboxes, agents=int(known))


def _stream_infos(keys: list[str]) -> Operation[list[Any]]:
    """XINFO STREAM of each key, in one batch; a stream deleted since it was seen (an agent
    deregistered meanwhile) is None, a key holding another type ``WRONG_TYPE`` (a damaged
    stream, reported as such: the rest of the report stands)."""
    if not keys:
        return []
    cmds = tuple(Cmd("XINFO", "STREAM", key) for key in keys)
    return (yield from past_wrong_type(cmds, gone="no such key"))
