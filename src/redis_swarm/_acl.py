"""Redis ACL users per role, built from the key layout of ``_keys`` and the command table of
``_ops._commands`` (pure functions, no I/O).

Every role but admin is an allowlist: ``-@all`` then exactly the commands its operations send
(and the scripts they call run), on its own swarm's keys, and no pub/sub channel::

    worker       the operations marked ``worker`` in the table; it reads every key of its
                 swarm but those of ``WORKER_HIDDEN`` (the webhooks A2A clients gave, with
                 their credentials), and on Redis >= 7 writes only
                 with the commands ``WORKER_WRITES`` gives each key (one ACL selector per
                 group of keys), so contexts stay read-only and findings or the event log
                 cannot be deleted or trimmed
    shard        every operation, on every key of its swarm
    coordinator  the same as shard (a separate user, so that it can be revoked alone)
    admin        everything (~* &* +@all)

Scripts run as Redis Functions (Redis >= 7.0): a role may FCALL the functions of the scripts its
operations call and no other, and may not EVAL, load scripts or functions (an admin loads the
library). A worker may not call those its operations call only for a shard
(``Uses.shard_only``): a report without a token is ``rs_task_report_unleased``, refused to it
by Redis, and ``rs_task_report`` refuses a report without a token. Redis checks every command
a function runs against its caller's rights, so a function can do no more than its caller.
Redis 6.2 has no selectors, read-only key patterns or Functions: there a worker's write
commands reach every key of its swarm, and every role but admin runs scripts by EVALSHA, so it
can load and run any Lua (``downgrade_warning``), a report without a token included.

Passwords go to Redis as their SHA-256 (``#<hex>``): the clear password is never sent in the
command, so it cannot show up in the server's slowlog, MONITOR or ACL LOG.

``_acl_apply.apply_role`` makes a user on the servers (``swarm acl --apply``).
"""

from __future__ import annotations

import hashlib
import inspect
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar, cast

from ._errors import ValidationError
from ._keys import Keys, label_id
from ._models import ACL_ROLES, AclRole
from ._ops._commands import (
    OPERATIONS,
    SCRIPTS_BEFORE_FUNCTIONS,
    SINCE,
    TRANSPORT,
    WORKER_READ_ONLY,
    WORKER_WRITES,
    script_commands,
)
from ._scripts import READ_ONLY_SCRIPTS, function_name
from ._validate import check_name, check_swarm_name

if TYPE_CHECKING:
    pass

__all__ = [
    "MIN_VERSION",
    "ROLES",
    "SELECTORS_SINCE",
    "WITHHELD",
    "WORKER_HIDDEN",
    "WORKER_READ_ONLY",
    "WORKER_WRITES",
    "AclUser",
    "Role",
    "acl_user",
    "check_acl_user",
    "command_rules",
    "downgrade_warning",
    "function_rules",
    "generate_password",
    "key_patterns",
    "key_selectors",
    "keys_members",
    "parse_version",
    "password_hash",
    "role_commands",
    "role_scripts",
    "selectors",
    "worker_read_patterns",
]

Role = AclRole
ROLES = ACL_ROLES
Version = tuple[int, int]
T = TypeVar("T")

MIN_PASSWORD_LEN = 16
MIN_VERSION: Version = (6, 2)  # ACL pub/sub channel rules
SELECTORS_SINCE: Version = (7, 0)  # ACL selectors, %R~ read-only keys, Functions

# Commands an operation sends that a role is not given: the operation copes with the refusal.
# CONFIG GET (doctor's fsync policy) would show the server's whole configuration; INFO (doctor,
# a strict handle's plan) lists every swarm's key counts (keyspace) and clients, and no ACL
# rule can allow only some of its sections (INFO server keyspace passes +info|server);
# FUNCTION LIST (doctor's library row) shows the code of every library on the server: a role
# asks its own ping function instead. Shards and coordinators keep INFO: doctor's persistence,
# memory and eviction warnings come from it (docs/security.md says what else it tells them).
WITHHELD: dict[Role, frozenset[str]] = {
    "worker": frozenset({"config|get", "function|list", "info"}),
    "shard": frozenset({"config|get", "function|list"}),
    "coordinator": frozenset({"config|get", "function|list"}),
    "admin": frozenset(),
}

# Keys a worker may not even read (a subset of WORKER_READ_ONLY: it writes none of them). Redis
# ACL patterns only allow, so the worker's keys are listed family by family, these left out;
# that works because every family has its own literal name right after the swarm's prefix
# (``rs:{NAME}:webhooks:...``), which no other family's pattern matches (tests/test_acl.py).
# A task's webhooks hold the token and credentials an A2A client gave for its endpoint: only
# the A2A server's user (a shard or coordinator) sets and reads them.
WORKER_HIDDEN = frozenset({"webhooks"})

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


def _known(command: str, version: Version | None) -> bool:
    """Whether a server of ``version`` knows ``command`` (unknown version: 7.0's commands)."""
    return SINCE.get(command, MIN_VERSION) <= (version or SELECTORS_SINCE)


def _operations(role: Role) -> list[str]:
    if role == "admin":
        raise ValueError("admin may run every command")
    return [name for name, uses in OPERATIONS.items() if role != "worker" or uses.worker]


def role_scripts(role: Role) -> frozenset[str]:
    """The scripts (``lua/`` names) the operations of ``role`` call: for a worker, not those
    its operations call only for a shard or coordinator (``Uses.shard_only``: a report
    without a token), so that Redis refuses their functions to it."""
    uses = [OPERATIONS[name] for name in _operations(role)]
    if role == "worker":
        return frozenset().union(*(u.scripts - u.shard_only for u in uses))
    return frozenset().union(*(u.scripts for u in uses))


def role_commands(role: Role, version: Version | None = None) -> frozenset[str]:
    """Every command ``role`` (not admin: it runs them all) may run, on a server of
    ``version`` (None: unknown, 7.0 or later): its operations' commands, what their scripts
    run, the transport's, and FCALL/FCALL_RO (of the role's functions only, see
    ``function_rules``) or, before Functions, EVALSHA and SCRIPT LOAD."""
    commands = set(TRANSPORT)
    for name in _operations(role):
        commands |= OPERATIONS[name].commands
    scripts = role_scripts(role)
    for script in scripts:
        commands |= script_commands(script)
    if _functions_on(version):
        commands |= {"fcall_ro" if s in READ_ONLY_SCRIPTS else "fcall" for s in scripts}
    else:
        commands |= SCRIPTS_BEFORE_FUNCTIONS
    return frozenset(c for c in commands - WITHHELD[role] if _known(c, version))


def function_rules(role: Role, version: Version | None = None) -> list[str]:
    """``+fcall|rs_<script>`` (``+fcall_ro|`` for a read-only one) for each script the
    operations of ``role`` call: it may call its own functions and no other."""
    if role == "admin" or not _functions_on(version):
        return []
    return [
        f"+{'fcall_ro' if s in READ_ONLY_SCRIPTS else 'fcall'}|{function_name(s)}"
        for s in sorted(role_scripts(role))
    ]


def _worker_writes() -> frozenset[str]:
    return frozenset().union(*WORKER_WRITES.values())


def _selectors_on(version: Version | None) -> bool:
    return version is None or version >= SELECTORS_SINCE


_functions_on = _selectors_on  # Functions arrived in 7.0 too


def worker_read_patterns(swarm: str) -> list[str]:
    """The key globs a worker of ``swarm`` may read: every family of the layout but
    ``WORKER_HIDDEN``, one glob each (with the context chunks)."""
    members = (m for m in keys_members() if m not in WORKER_HIDDEN)
    return list(dict.fromkeys(key_patterns(swarm, m) for m in members))


def key_selectors(role: Role, swarm: str) -> list[str]:
    """The ``resetkeys`` and ``~`` rules of ``role`` in ``swarm`` (a worker's writes are
    limited by its selectors, not by these; its reads by these)."""
    if role == "admin":
        return ["resetkeys", "~*"]
    patterns = worker_read_patterns(swarm) if role == "worker" else _swarm_patterns(swarm)
    return ["resetkeys", *(f"~{p}" for p in patterns)]


def selectors(role: Role, swarm: str, version: Version | None = None) -> list[str]:
    """A worker's Redis >= 7 selectors: per group of keys, the write commands it may run on
    them (``WORKER_WRITES``). One argument each, such as ``(~rs:{a}:events +xadd)``."""
    if role != "worker" or not _selectors_on(version):
        return []
    groups: dict[frozenset[str], list[str]] = defaultdict(list)
    for member, commands in sorted(WORKER_WRITES.items()):
        groups[commands].append(key_patterns(swarm, member))
    return [
        "(" + " ".join([*(f"~{p}" for p in patterns), *(f"+{c}" for c in sorted(cmds))]) + ")"
        for cmds, patterns in groups.items()
    ]


def command_rules(role: Role, version: Version | None = None) -> list[str]:
    """The command rules of ``role`` (the root permissions; a worker's writes on Redis >= 7
    come from its selectors)."""
    if role == "admin":
        return ["+@all"]
    commands = role_commands(role, version) - {"fcall", "fcall_ro"}
    if role == "worker" and _selectors_on(version):
        commands -= _worker_writes()
    return ["-@all", *(f"+{c}" for c in sorted(commands)), *function_rules(role, version)]


def channel_rules(role: Role) -> list[str]:
    """Pub/sub channels: none (no operation uses pub/sub), every one for admin."""
    return ["resetchannels", "&*"] if role == "admin" else ["resetchannels"]


def downgrade_warning(role: Role, version: Version) -> str | None:
    """What ``role`` can do on a server of ``version`` that it could not on Redis >= 7, or
    None when nothing."""
    if role == "admin" or _selectors_on(version):
        return None
    named = f"Redis {version[0]}.{version[1]}"
    lua = (
        "it can run any Lua code of its own (SCRIPT LOAD, then EVALSHA: there are no Redis "
        "Functions before 7.0), such as a script that never ends and, once it wrote, makes "
        "every swarm on the server answer BUSY until the server is restarted"
    )
    if role != "worker":
        return f"{named}: {lua}. Use Redis >= 7.0 where that matters"
    writes = ", ".join(sorted(c for c in _worker_writes() if _known(c, version)))
    read_only = ", ".join(sorted(WORKER_READ_ONLY - WORKER_HIDDEN))
    return (
        f"{named} has no ACL selectors, read-only key patterns or Functions (all 7.0): this "
        f"worker may run its write commands ({writes}) on every key of its swarm it may read "
        f"(all but {', '.join(sorted(WORKER_HIDDEN))}), where on "
        f"7.x each is limited to the keys its operations write: so it can overwrite contexts "
        f"and delete or rewrite findings, tasks, inboxes and the event log, and write the "
        f"keys that are read-only on 7.x ({read_only}); and {lua}. Give workers you do not "
        f"trust a Redis >= 7.0"
    )


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
    version: Version | None = None  # the server version the rules are for (None: any >= 7.0)
    warning: str | None = None  # what the role can do there that it could not on 7.x

    @property
    def command(self) -> tuple[str, ...]:
        """The command as arguments (for execute_command)."""
        return ("ACL", "SETUSER", self.user, *self.rules)

    @property
    def line(self) -> str:
        """The command as one line for redis-cli (it holds the hash, not the password); a
        selector, which holds spaces, is quoted."""
        return " ".join(f'"{arg}"' if " " in arg else arg for arg in self.command)


def check_acl_user(role: str, swarm: str, user: str, version: Version | None = None) -> None:
    """Refuse (ValidationError) what ``acl_user`` would refuse of its role, swarm, user and
    version, before anything is asked for (a password typed at a terminal)."""
    if version is not None and version < MIN_VERSION:
        raise ValidationError(
            f"Redis {version[0]}.{version[1]} is too old for per-role users (ACL pub/sub "
            "channel rules arrived in 6.2): use Redis >= 7.0"
        )
    if role not in ROLES:
        raise ValidationError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    check_swarm_name(swarm)
    check_name("user name", user)
    if user == "default" and role != "admin":
        raise ValidationError(
            "do not restrict the 'default' user: create a named user per role, and once an "
            "admin user exists turn the default one off (ACL SETUSER default off resetpass: "
            "'off' alone leaves it passwordless, and protected mode then refuses every client "
            "beyond loopback)"
        )


def acl_user(
    role: str,
    swarm: str,
    user: str,
    password: str | None = None,
    version: Version | None = None,
) -> AclUser:
    """The ACL SETUSER rules that make ``user`` a ``role`` of ``swarm``.

    With no password, a strong one is generated. The rules start with ``reset``, so applying
    them again replaces the user's rights and password instead of adding to them. The rules
    are the ones a server of ``version`` (major, minor) accepts: commands it does not know are
    left out, and before 7.0 a worker gets no selectors (``warning`` says what that allows).
    Without a version, they are for any server >= 7.0.
    """
    check_acl_user(role, swarm, user, version)
    generated = password is None
    secret = generate_password() if password is None else check_password(password)
    typed = cast(Role, role)  # (one of ROLES: check_acl_user)
    rules = (
        "reset",
        "on",
        f"#{password_hash(secret)}",
        *channel_rules(typed),
        *key_selectors(typed, swarm),
        *command_rules(typed, version),
        *selectors(typed, swarm, version),
    )
    warning = downgrade_warning(typed, version) if version is not None else None
    return AclUser(
        user, typed, swarm, rules, password=secret, generated=generated, version=version,
        warning=warning,
    )  # fmt: skip


def parse_version(text: str) -> Version:
    """``7.2`` or ``7.2.4`` as (7, 2)."""
    parts = text.strip().split(".")
    if len(parts) < 2 or not all(part.isdigit() for part in parts[:3]):
        raise ValidationError(
            f"{text!r} is not a Redis version: give it as MAJOR.MINOR, such as 7.2"
        )
    return int(parts[0]), int(parts[1])
