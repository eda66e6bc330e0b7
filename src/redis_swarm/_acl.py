"""Redis ACL users per role, built from the key layout of ``_keys`` (pure functions, no I/O).

A role is a set of key selectors and command rules for ``ACL SETUSER`` (Redis >= 7)::

    worker       read-write on the work queue, findings, agents, presence, messages, events;
                 read-only (%R~) on contexts and context chunks; no DEL/UNLINK/RENAME
                 (but a selector lets it DEL an inbox: deregister and sweep need that)
    shard        read-write on every key of its swarm
    coordinator  the same as shard (a separate user, so that it can be revoked alone)
    admin        everything (~* &* +@all)

Non-admin roles never get another swarm's keys, and never the server's admin or dangerous
commands (FLUSHALL, FLUSHDB, KEYS, CONFIG, DEBUG, SHUTDOWN, ACL, MONITOR...), SCAN and
RANDOMKEY (they would list other swarms' key names), SCRIPT FLUSH/KILL or FUNCTION. EVAL and
EVALSHA stay allowed: since Redis 7 every command a script runs is checked against the same
ACL, so a script can do no more than its caller, and keys passed to EVAL/EVALSHA must be
writable (a script that only reads read-only keys must run as EVALSHA_RO).

Passwords go to Redis as their SHA-256 (``#<hex>``): the clear password is never sent in the
command, so it cannot show up in the server's slowlog, MONITOR or ACL LOG.
"""

from __future__ import annotations

import hashlib
import inspect
import secrets
from dataclasses import dataclass, field
from typing import Literal, get_args

from ._errors import ValidationError
from ._keys import Keys, label_id
from ._validate import check_name, check_swarm_name

__all__ = [
    "ROLES",
    "WORKER_READ_ONLY",
    "WORKER_READ_WRITE",
    "AclUser",
    "Role",
    "acl_user",
    "command_rules",
    "generate_password",
    "key_patterns",
    "key_selectors",
    "keys_members",
    "password_hash",
    "selectors",
]

Role = Literal["worker", "shard", "coordinator", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)

MIN_PASSWORD_LEN = 16

# Every member of ``Keys`` is listed in exactly one of these two sets (a test checks it), so a
# key added to the layout forces a decision here. An unlisted member is read-only for workers.
WORKER_READ_ONLY = frozenset(
    {
        "contexts",
        "context_manifests",
        "context_history",
        "chunk_refs",
        "chunk",
        "scratch",  # swarm bench's floor measurement: not a worker's to write
    }
)
WORKER_READ_WRITE = frozenset(
    {
        "events",
        "queues",
        "tasks",
        "task_data",
        "task_index",
        "leases",
        "dedupe",
        "counts",
        "pending",
        "delayed",
        "wake",  # BLPOP and the claim script's clearing are writes
        "dead",
        "pass_counts",
        "pass_tasks",
        "findings",
        "finding_index",
        "findings_by",
        "agents",
        "presence",
        "inbox",
        "broadcast",
        "cursors",
        "departures",  # deregister records its call, to answer a retry
        # listed by the index_page script: keys a script receives must be writable (EVALSHA
        # declares its keys read-write), so a worker that may list syntheses may write them
        "syntheses",
        "synthesis_index",
    }
)

# Commands no role but admin gets, on top of @admin and @dangerous (FLUSHALL, FLUSHDB, KEYS,
# CONFIG, DEBUG, SHUTDOWN, ACL SETUSER, MONITOR, MIGRATE, SORT, ...).
_NON_ADMIN_DENIED = (
    "-scan",
    "-randomkey",
    "-script|flush",
    "-script|kill",
    "-function",
)
# What @dangerous takes away that clients need: INFO for server_info / swarm doctor.
_NON_ADMIN_ALLOWED = ("+info",)
# Workers do not destroy keys (their scripts remove members, never whole keys).
_WORKER_DENIED = (
    "-del",
    "-unlink",
    "-rename",
    "-renamenx",
    "-move",
    "-copy",
    "-expire",
    "-pexpire",
    "-expireat",
    "-pexpireat",
)

_GLOB = "ACLGLOB"
_DIGEST_GLOB = "?" * 16 + "*"


def keys_members() -> list[str]:
    """The public key builders of ``Keys`` (properties and methods), by name."""
    names = []
    for name, value in inspect.getmembers(Keys):
        if name.startswith("_") or name in ("prefix", "swarm"):
            continue
        if isinstance(value, property) or inspect.isfunction(value):
            names.append(name)
    return sorted(names)


def key_patterns(swarm: str, member: str) -> str:
    """The ACL key glob matching every key ``Keys(swarm).<member>`` can build."""
    keys = Keys(swarm)
    attr = inspect.getattr_static(Keys, member)
    if isinstance(attr, property):
        return str(getattr(keys, member))
    params = list(inspect.signature(attr).parameters)[1:]
    args = [_DIGEST_GLOB if name == "digest" else _GLOB for name in params]
    key = str(getattr(keys, member)(*args))
    return key.replace(label_id(_GLOB), "*").replace(_GLOB, "*")


def _swarm_patterns(swarm: str) -> tuple[str, str]:
    """Every coordination key of the swarm, and every context chunk of it."""
    return Keys(swarm).prefix + "*", key_patterns(swarm, "chunk")


def key_selectors(role: Role, swarm: str) -> list[str]:
    """The ``resetkeys``, ``%R~`` and ``~`` rules of ``role`` in ``swarm``."""
    if role == "admin":
        return ["resetkeys", "~*"]
    if role in ("shard", "coordinator"):
        return ["resetkeys", *(f"~{p}" for p in _swarm_patterns(swarm))]
    read_only: list[str] = []
    read_write: list[str] = []
    for member in keys_members():
        pattern = key_patterns(swarm, member)
        (read_write if member in WORKER_READ_WRITE else read_only).append(pattern)
    return [
        "resetkeys",
        *(f"%R~{p}" for p in dict.fromkeys(read_only)),
        *(f"~{p}" for p in dict.fromkeys(read_write)),
    ]


def selectors(role: Role, swarm: str) -> list[str]:
    """Extra Redis 7 selectors: a worker may delete inboxes (deregister and sweep drop the
    inbox of the agent they remove), and no other key."""
    if role != "worker":
        return []
    return [f"(~{key_patterns(swarm, 'inbox')} +del +unlink)"]


def command_rules(role: Role) -> list[str]:
    """The command rules of ``role`` (applied in order after ``-@all``)."""
    if role == "admin":
        return ["+@all"]
    rules = ["+@all", "-@admin", "-@dangerous", *_NON_ADMIN_ALLOWED, *_NON_ADMIN_DENIED]
    if role == "worker":
        rules += _WORKER_DENIED
    return rules


def channel_rules(role: Role, swarm: str) -> list[str]:
    """Pub/sub channels: the swarm's own (wake-up hints), every one for admin."""
    if role == "admin":
        return ["resetchannels", "&*"]
    return ["resetchannels", f"&{Keys(swarm).prefix}*"]


def generate_password() -> str:
    """A strong random password (256 bits, URL-safe so that it fits a redis:// URL as is)."""
    return secrets.token_urlsafe(32)


def password_hash(password: str) -> str:
    """The SHA-256 hex digest Redis stores (``ACL SETUSER user #<hex>``)."""
    return hashlib.sha256(password.encode()).hexdigest()


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LEN:
        raise ValidationError(
            f"the password is {len(password)} characters long; use at least {MIN_PASSWORD_LEN}, "
            "or leave it out and a strong one is generated"
        )
    return password


@dataclass(frozen=True)
class AclUser:
    """One ``ACL SETUSER`` for a role; ``password`` is kept only to show it once."""

    user: str
    role: Role
    swarm: str
    rules: tuple[str, ...]
    password: str | None = field(default=None, repr=False)
    generated: bool = False

    @property
    def command(self) -> tuple[str, ...]:
        """The command as arguments (for execute_command)."""
        return ("ACL", "SETUSER", self.user, *self.rules)

    @property
    def line(self) -> str:
        """The command as one line for redis-cli (it holds the hash, not the password)."""
        return " ".join(self.command)


def acl_user(
    role: str,
    swarm: str,
    user: str,
    password: str | None = None,
) -> AclUser:
    """The ACL SETUSER rules that make ``user`` a ``role`` of ``swarm``.

    With no password, a strong one is generated. The rules start with ``reset``, so applying
    them again replaces the user's rights and password instead of adding to them.
    """
    if role not in ROLES:
        raise ValidationError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    check_swarm_name(swarm)
    check_name("user name", user)
    if user == "default" and role != "admin":
        raise ValidationError(
            "do not restrict the 'default' user: create a named user per role, and once an "
            "admin user exists turn the default one off (ACL SETUSER default off)"
        )
    generated = password is None
    secret = generate_password() if password is None else check_password(password)
    typed: Role = role
    rules = (
        "reset",
        "on",
        f"#{password_hash(secret)}",
        *channel_rules(typed, swarm),
        *key_selectors(typed, swarm),
        *command_rules(typed),
        *selectors(typed, swarm),
    )
    return AclUser(user, typed, swarm, rules, password=secret, generated=generated)
