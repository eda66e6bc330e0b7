"""How a server keeps a user made or deleted there: ACL SAVE into its aclfile, else CONFIG
REWRITE into its redis.conf, else in memory only, saying what that costs and the way out
(``_persist``: what ``apply_role``'s ``persisted`` and ``revoke_user``'s ``deleted`` say of
each server). Run on the connection that set the user, logged in already: a new one would
need the password just rotated.
"""

from __future__ import annotations

from typing import Any

import redis

from ._config import Settings
from ._embedded import EmbeddedServer, swarm_command

# What the server answers an ACL SAVE when it has no aclfile ("This Redis instance is not
# configured to use an ACL file...") and a CONFIG REWRITE when it has no redis.conf ("The
# server is running without a config file"): the way to keep a user that is not there.
_NO_ACLFILE = "not configured to use an acl file"
_NO_CONFIG_FILE = "without a config file"
# What an ACL SAVE that succeeded says, before the aclfile's path when known (_saved_to).
_SAVED = "saved to the aclfile"
# The end of every 'in memory only' said: what it costs, and the way out.
_LOST_AT_RESTART = "or it is lost at restart"
_IN_MEMORY = ("in memory only", _LOST_AT_RESTART)
# The same of a user deleted (``revoke_user``): its line in the aclfile or redis.conf stays.
_DELETED = "deleted"
_DELETED_IN_MEMORY = "deleted in memory only"
_BACK_AT_RESTART = "or the user is back at restart (its line is still in the file)"
# How a server keeps the user when it stopped answering between its ACL SETUSER and saving it.
_SET_NOT_SAVED = (
    "in memory only (set, but the server stopped answering before it was saved): run ACL "
    f"SAVE there once it answers, {_LOST_AT_RESTART}"
)


def _persist(client: Any, settings: Settings, *, deleting: bool = False) -> str:
    """ACL SAVE (aclfile, named: ``_saved_to``), else CONFIG REWRITE (redis.conf), else say it
    is memory only and why: no such file (the embedded server of ``settings`` started
    without an aclfile: ``_embedded_without_aclfile``), the URL's user may not save (NOPERM:
    whether the server has an aclfile is not known then, so redis.conf is not tried: users
    written there are not read when it has one), or the server's error. ``deleting``: what
    is kept is a user's deletion (``revoke_user``): CONFIG REWRITE drops its ``user`` line
    from redis.conf, and a server with neither file restarts without it."""
    who = settings.shown_user
    memory, lost = (_DELETED_IN_MEMORY, _BACK_AT_RESTART) if deleting else _IN_MEMORY
    try:
        client.execute_command("ACL", "SAVE")
    except redis.exceptions.NoPermissionError:
        run = "ACL SAVE (or CONFIG REWRITE, with no aclfile)"
        return _not_saved(who, "ACL SAVE", run, deleting=deleting)
    except redis.ResponseError as exc:
        if _NO_ACLFILE not in str(exc).lower():
            return f"{memory} (ACL SAVE failed: {exc}): fix it and run ACL SAVE, {lost}"
        if settings.kind == "embedded":
            if deleting:
                return f"{_DELETED} (the embedded server has no aclfile: it stops without it)"
            return _embedded_without_aclfile(settings)
    else:
        return _saved_to(client, settings)
    try:
        client.execute_command("CONFIG", "REWRITE")
    except redis.exceptions.NoPermissionError:
        refused = "CONFIG REWRITE (the server has no aclfile)"
        return _not_saved(who, refused, "CONFIG REWRITE", deleting=deleting)
    except redis.ResponseError as exc:
        if _NO_CONFIG_FILE not in str(exc).lower():
            return f"{memory} (CONFIG REWRITE failed: {exc}): fix it and run CONFIG REWRITE, " + (
                lost
            )
        if deleting:  # (its users were all made at run time: none is read at a restart)
            return f"{_DELETED} (the server has no aclfile or config file: it restarts without it)"
        return (
            "in memory only (the server has no aclfile or config file): "
            f"add the line to its aclfile or redis.conf, {_LOST_AT_RESTART}"
        )
    return "saved to redis.conf (CONFIG REWRITE)"


def _saved_to(client: Any, settings: Settings) -> str:
    """What an ACL SAVE that succeeded says: the aclfile, named. The embedded server's is its
    home's (``EmbeddedServer.aclfile``); another server is asked (CONFIG GET aclfile), and
    when the URL's user may not (NOPERM) or it does not say, the words go without a path."""
    if settings.kind == "embedded":
        return f"{_SAVED} {EmbeddedServer(settings.home).aclfile}"
    try:
        reply = client.config_get("aclfile")
    except redis.RedisError:
        return _SAVED
    # (its one entry: keyed b"aclfile" or "aclfile", as the client decodes)
    path = next(iter(reply.values()), None) if isinstance(reply, dict) else None
    if isinstance(path, bytes):
        path = path.decode(errors="replace")
    return f"{_SAVED} {path}" if path else _SAVED


def _embedded_without_aclfile(settings: Settings) -> str:
    """What persisting says on an embedded server started without an aclfile (by a version
    before it had one: ``EmbeddedServer`` starts it with ``--aclfile`` since): no file of it
    can be edited (swarm starts it), but a restart gives it one."""
    home = settings.home
    return (
        "in memory only (the embedded server was started by an older version, without an "
        "aclfile): the users made on it last until it stops. Run "
        f"'{swarm_command(home, 'down')}' then '{swarm_command(home, 'up')}' to restart it "
        f"with an aclfile ({EmbeddedServer(home).aclfile}), then make the users again: those "
        "made after that are kept"
    )


def _not_saved(who: str, refused: str, run: str, *, deleting: bool = False) -> str:
    """What persisting says when the URL's user ``who`` may not run ``refused`` (NOPERM):
    not that the server has no file to keep it in, which it may well have."""
    memory, lost = (_DELETED_IN_MEMORY, _BACK_AT_RESTART) if deleting else _IN_MEMORY
    return (
        f"{memory} (user {who!r} may not run {refused}: NOPERM): have an admin run {run} "
        f"there, {lost}"
    )
