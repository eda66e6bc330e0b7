"""The servers that must hold a Redis user, found and reached: what ``apply_role`` (and
``revoke_user``) walk. ACLs are per node, so a user goes on every node of a cluster (replicas
included, as CLUSTER NODES lists them), on the master and the replicas behind a Sentinel (as
the sentinels list them), and on the one server of a plain URL (whose replicas it does not
reach: ``_unreached_replicas``). ``_on_every_node`` reaches each (a PING given the connect
timeout), logs in (the URL's password, else the new one of a rotation half done), leaves out
the replicas that are down or do not answer, saying why, and fails the call, before any
server got the user, for a master that cannot be reached or a server that refuses the URL's
user; then it runs one step on each. What is said of each server left out or refused is
here too: it is the walk's.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import quote

import redis

from ._config import SENTINEL_URL, Settings
from ._connect import sync_client
from ._errors import AUTHENTICATION_FAILED, ConnectionFailed, PermissionDenied, SwarmError
from ._replies import cluster_shards, reply_fields
from ._topology import (
    direct_settings,
    sentinel_down,
    sentinel_link_down,
    sentinel_replicas,
    sentinel_unlinked,
)
from ._translate import PASSWORD_AS_USER, causes, may_have_reached, translate, why_no_answer

T = TypeVar("T")


def _connecting_user(settings: Settings) -> str:
    """The Redis user ``settings`` connects as: the URL's, else ``default`` (a URL with a
    password alone, or none, logs in as it). To tell whether a user is that one; a message
    names it as ``Settings.shown_user`` (a user name may be a password: masked)."""
    return settings.username or "default"


def _unreached_replicas(settings: Settings, revoking: str | None = None) -> dict[str, str]:
    """The replicas of the server of a plain URL (INFO replication: replica -> why), which
    the apply did not reach: such a URL names one server, and ACLs are not replicated, so
    each lacks the user (a failover to it, or a client sent to it, would be refused). None
    for a cluster or Sentinel URL (their replicas are found and applied), for the embedded
    server, and when the server will not say (NOPERM, no answer: the user is applied
    already; this is only a warning). ``revoking``: the command of a revoke that left them
    out (all of it known, so said whole: the replicas still hold the user, and were never
    down, so no "once it is back" would fit), else an apply's."""
    if settings.kind in ("cluster", "sentinel", "embedded"):
        return {}
    client: Any = sync_client(settings)
    try:
        info = client.info("replication")
    except (redis.RedisError, OSError):
        return {}
    finally:
        client.close()
    found: dict[str, str] = {}
    for key, entry in info.items():
        if not (re.fullmatch(r"slave\d+", str(key)) and isinstance(entry, dict)):
            continue
        name = _node(str(entry.get("ip", "")), int(entry.get("port") or 0))
        if revoking is None:
            how = (
                "To include the replicas, apply through the sentinels that watch them (a "
                "redis+sentinel:// URL), or run this command again with a URL naming "
                f"{name} (the same user and password)"
            )
        else:
            how = (
                "To revoke the user there too, run it through the sentinels that watch the "
                "replicas (their URL reaches every replica they see): "
                f"SWARM_URL={_sentinel_url(settings)} {revoking}; or with SWARM_URL naming "
                f"{name} (the same user and password)"
            )
        found[name] = (
            f"a replica of {settings.url}, not reached: that URL names one server, and ACLs "
            f"are not replicated. {how}"
        )
    return found


def _sentinel_url(settings: Settings) -> str:
    """A Sentinel URL (``SENTINEL_URL``'s form) with the user and a placeholder for the
    password of ``settings``, to fill in."""
    login = "" if settings.password is None else ":PASSWORD@"
    if settings.username is not None:  # (percent-encoded, as a URL's user is written)
        login = quote(settings.shown_user, safe="*") + (login or "@")
    return SENTINEL_URL.replace("://", f"://{login}", 1)


# What a server that does not answer raises: refused, reset or timed out (some are answers,
# or configuration problems, though: see _did_not_answer).
_NO_ANSWER = (redis.ConnectionError, redis.TimeoutError, OSError)


def _on_every_node(
    settings: Settings,
    fn: Callable[[Any, str], T],
    silent: Mapping[str, str] | None = None,
    *,
    before: Callable[[list[_Target]], object] | None = None,
    done: dict[str, T] | None = None,
    fallback: str | None = None,
    whole: bool = False,
    refusal_fails: bool = False,
) -> tuple[dict[str, T], dict[str, str]]:
    """``fn(client, node)`` on every server that must hold the user, by node name (into
    ``done`` when given, as each returns), and the servers left out (node -> why: reported down, or
    not answering; ``silent``: found not answering already, not tried again). Every server is
    reached (``_probe``) before ``fn`` runs anywhere, so that a master that cannot be reached
    fails the call before any server got the user; ``before(reached)`` runs then, once.
    ``fallback``: a password tried on a server that refuses the URL's (``_logged_in``).
    ``whole``: no server may be left out (the user is the URL's own, whose password a server
    left out would keep: ``_not_everywhere``): one that would be fails the call, before
    ``fn`` runs anywhere when found then, else once ``fn`` failed there. A server found that
    refuses the URL's user fails the call (``_refused_login``, before ``fn`` runs anywhere)
    when it is a master or ``refusal_fails`` (an apply: the replica is up, and lacks the
    admin, which a copy of the aclfile fixes at once); a replica (a cluster node without
    hash slots) is left out otherwise (a dry run's version check), saying why. redis-py
    errors arrive translated (one line saying what to do)."""

    done = {} if done is None else done
    reached: list[_Target] = []
    try:
        targets, skipped = _targets(settings, fallback)
        for target in targets:
            if silent and target.name in silent:
                skipped[target.name] = silent[target.name]
                continue
            try:
                reached.append(_logged_in(target, fallback))
            except redis.AuthenticationError:
                if not target.found:
                    raise  # (the URL's own server: translated below, as for any client)
                admitted = [other.name for other in reached]
                if target.serves or refusal_fails:
                    raise _refused_login(settings, target, admitted, fallback) from None
                skipped[target.name] = _refusal(settings, target, admitted, fallback)
            except _NO_ANSWER as exc:
                skipped[target.name] = _did_not_answer(settings, target, exc, applied=[])
        if whole and skipped:
            raise _not_everywhere(settings, skipped, applied=[])
        if before is not None:
            before(reached)
        for target in reached:
            client: Any = sync_client(target.settings)
            try:
                done[target.name] = fn(client, target.name)
            except _NO_ANSWER as exc:  # (it stopped answering since its PING)
                others = [name for name in done if name != target.name]
                why = _did_not_answer(settings, target, exc, others, applying=True)
                if target.name not in done:  # (else it holds the user, unsaved: said there)
                    if whole:
                        raise _not_everywhere(
                            settings, {target.name: why}, others, sent=may_have_reached(exc)
                        ) from None
                    skipped[target.name] = why
            finally:
                client.close()
    except SwarmError:
        raise
    except (redis.RedisError, OSError) as exc:
        if isinstance(exc, redis.AuthenticationError) and _names_its_user(settings):
            raise _url_user_refused(settings) from None
        raise translate(exc, settings.url) from None
    return done, skipped


# What a refused login may mean: Redis answers a user it does not have as it answers a wrong
# password (WRONGPASS, by design: a login tells no one which users exist).
_UNKNOWN_OR_WRONG = "the user does not exist or its password is wrong (Redis answers both alike)"


def _names_its_user(settings: Settings) -> bool:
    """The URL names the user it logs in as, and its own server refused it as ``translate``
    would say without naming a node: not a cluster URL (whose client names the node that
    refused, and says what that means: ``_refusal`` for the nodes this module finds)."""
    return settings.username is not None and settings.kind != "cluster"


def _url_user_refused(settings: Settings) -> PermissionDenied:
    """The URL's own server refused its user (``_names_its_user``): for the user that does
    not exist there as for a wrong password, and the way to make it (a ``swarm acl`` that
    applies needs an admin: made so, with an admin's URL)."""
    if settings.password is None:
        # (not named: a user name alone is most likely a password, its ':' forgotten)
        return PermissionDenied(
            f"{AUTHENTICATION_FAILED} on {settings.url}: it refused the URL's user name, "
            f"given without a password; {PASSWORD_AS_USER}"
        )
    # (a name holding a ':' is shown masked, as the URL shows it: ``Settings.shown_user``)
    who = settings.shown_user
    return PermissionDenied(
        f"{AUTHENTICATION_FAILED} on {settings.url}: it refused user {who!r} with the URL's "
        f"password: {_UNKNOWN_OR_WRONG}. Check the user name and password in the URL (a '%' "
        "in the password is written %25); to make the user, run 'SWARM_URL=ADMIN_URL swarm "
        f"acl --role admin --user {who} --password-stdin --apply' with the URL of an admin of "
        "that server in SWARM_URL (exported, or read from a file: a --url shows its password "
        "in ps and the shell's history) and the URL's password on standard input, then run "
        "this command again"
    )


def _logged_in(target: _Target, fallback: str | None) -> _Target:
    """``target`` once it answered a PING (``_probe``; the URL's own server is not probed: its
    retries ride out an outage), logged in; with ``fallback`` given, one that refuses the
    URL's password is tried with that one, and returned with it (``fell_back``). Raises what
    the server raised (with both passwords refused, the URL's refusal)."""
    if fallback is None:
        if target.found:
            _probe(target.settings)
        return target
    try:
        _probe(target.settings)
    except redis.AuthenticationError as refused:
        other = replace(target, settings=target.settings.replace(password=fallback))
        try:
            _probe(other.settings)
        except redis.AuthenticationError:
            raise refused from None
        return replace(other, fell_back=True)
    return target


def _refused_login(
    settings: Settings, target: _Target, admitted: list[str], fallback: str | None
) -> PermissionDenied:
    """A server found through the URL (a replica or the master behind the sentinels, a node
    of the cluster) refused the URL's user and password (and ``fallback``): said of that
    server, not of the URL, whose credentials ``admitted`` (the servers that took them
    before) did let in (``_refusal``). Raised before any server got the user, by every
    apply (a dry run skips a replica that refuses)."""
    if settings.kind == "cluster":
        what = "cluster node" + (" holding hash slots" if target.serves else "")
    else:
        what = "the master behind the sentinels" if target.serves else "replica"
    return PermissionDenied(
        f"{AUTHENTICATION_FAILED} on {what} {target.name} of {settings.url}: "
        f"{_refusal(settings, target, admitted, fallback)}; then run this command again. "
        "Nothing was applied"
    )


def _refusal(settings: Settings, target: _Target, admitted: list[str], fallback: str | None) -> str:
    """Why ``target`` refused the URL's user, and what to do: what ``_refused_login`` says.
    ACLs are per server and not replicated: a replica or node
    added since the admin was made has none of the users, unless given a copy of the
    aclfile."""
    who = settings.shown_user
    tried = "the URL's password" + (" and the new one given" if fallback else "")
    if admitted:
        why = (
            f"{', '.join(admitted)} let that user in with it, so user {who!r} is most likely "
            f"missing on {target.name} (or has another password there)"
        )
    else:
        why = (
            f"on {target.name} {_UNKNOWN_OR_WRONG}: check the user name and password in the "
            f"URL; if they are right, the user is missing on {target.name} (or has another "
            "password there)"
        )
    return (
        f"it refused user {who!r} with {tried}; {why}. ACLs are per server and not "
        f"replicated: a server added since the user was made has none of its users. Create "
        f"user {who!r} on {target.name} with the same password and rights (as an admin of "
        "it: ACL SETUSER, then ACL SAVE), or copy the aclfile of a server that has it to it "
        "and run ACL LOAD there (docs/deployment.md: give a new replica the aclfile before it "
        "starts)"
    )


def _not_everywhere(
    settings: Settings, left_out: Mapping[str, str], applied: list[str], *, sent: bool = False
) -> ConnectionFailed:
    """The URL's own user (its password rotating) cannot be applied on every server: it is
    not applied at all (or, should a server fail once others hold it, ``PartlyApplied`` says
    how to finish). A server left without it would keep the old password, no one URL would
    reach every server any more, and a failover to that one would lock the new password
    out, the one way in, and a later apply with it. ``sent``: the user was sent to the
    server that failed (it may hold it). Retryable: only servers that did not answer are
    left out (one that failed with what no retry fixes fails the call with its own error,
    ``_did_not_answer``)."""
    why = "; ".join(f"{node} {reason}" for node, reason in left_out.items())
    done = f"it was applied on {', '.join(applied)} only" if applied else "nothing was applied"
    return ConnectionFailed(
        f"cannot rotate the password of user {settings.shown_user!r}, the one the URL "
        f"connects as, on every server: {why}; {done}, as a server left out would keep the "
        "old password (no one URL would reach every server, and a failover to it would lock "
        "the new one out): bring it back, then run this command again",
        sent=sent,
    )


def _probe(settings: Settings) -> None:
    """A PING to the server of ``settings`` (a found one, ``direct_settings``: tried once, a
    server that does not answer left out, ``_did_not_answer``), its reply given the connect
    timeout too: a server that takes connections and never answers is left out that
    soon. Only the PING: an ACL SETUSER, ACL SAVE or CONFIG REWRITE (an fsync on a busy disk)
    gets the URL's socket timeout, so that one that succeeded is not taken for a server that
    did not answer."""
    timeout = min(settings.socket_timeout, settings.connect_timeout)
    client: Any = sync_client(settings.replace(socket_timeout=timeout))
    try:
        client.ping()
    except redis.ResponseError:
        pass  # it answers (its user may not run PING: a dry run's may be any)
    finally:
        client.close()


def _did_not_answer(
    settings: Settings,
    target: _Target,
    exc: BaseException,
    applied: list[str],
    *,
    applying: bool = False,
) -> str:
    """Why ``target``, which raised ``exc``, is left out. Raised instead: ``exc`` when the
    server answered (a wrong password) or is the URL's own (its retries have ridden out an
    outage, and there is nothing to leave it out of); the translated ``exc`` when it answered
    with a problem to fix (``_answered_with_a_problem``) or failed with one no retry fixes
    (``ConnectionFailed.retryable`` False: a certificate file of the URL gone); and
    ``_master_unreachable`` for a master (``sent`` when ``applying``: ``exc`` came from the
    apply itself, not the PING before it, and may have reached it)."""
    if not target.found or isinstance(exc, redis.AuthenticationError):
        raise exc
    translated = translate(exc, target.settings.url)
    if _answered_with_a_problem(exc) or (
        isinstance(translated, ConnectionFailed) and not translated.retryable
    ):
        raise translated from None
    why = f"did not answer ({why_no_answer(str(exc))})"
    if target.flagged:
        why += f", and {target.flagged}"
    if target.serves:
        sent = applying and may_have_reached(exc)
        raise _master_unreachable(settings, target.name, why, applied, sent=sent) from None
    return why


def _answered_with_a_problem(exc: BaseException) -> bool:
    """True for the connection errors of a server that is there: one still loading its data
    (LOADING: apply again in a moment), one whose TLS failed (a certificate that does not name
    the host the node is dialled by, a CA that did not sign it, a client certificate refused).
    The configuration is to fix, or the moment to wait: not a server to leave out."""
    return isinstance(exc, redis.BusyLoadingError) or any(
        isinstance(item, ssl.SSLError) for item in causes(exc)
    )


def _master_unreachable(
    settings: Settings, node: str, why: str, applied: list[str], *, sent: bool = False
) -> ConnectionFailed:
    """A master that cannot be reached: the apply fails (a replica is skipped instead). The
    role's clients are sent to it, and the swarm's library, loaded on every master before the
    users, would wait out the URL's retries for it and fail: the user must wait for it.
    ``sent``: the user was sent to it (it may hold it). Retryable: it is down, flagged so or
    not answering (``_did_not_answer`` raises what no retry fixes as itself)."""
    if settings.kind == "cluster":
        what, failover = "a master holding hash slots", "the cluster fails it over to a replica"
        failover += " (its cluster-node-timeout after it stopped answering)"
    else:
        what, failover = "the master behind the sentinels", "the sentinels fail it over"
    done = f"it was applied on {', '.join(applied)} only" if applied else "nothing was applied"
    return ConnectionFailed(
        f"cannot apply the user on {node}, {what}: {why}; {done}, as every master must hold it "
        f"and the swarm's library: bring {node} back, or wait until {failover}, then run this "
        "command again",
        sent=sent,
    )


@dataclass(frozen=True)
class _Target:
    """A server that must hold the user: its node name and settings (direct), whether it is a
    master (``serves``: one holding hash slots, the master behind the sentinels), and whether
    it was ``found`` by asking the cluster or the sentinels (then tried once, briefly: see
    ``_probe``) rather than named by the URL; ``flagged``: why CLUSTER NODES flags it down,
    for one tried all the same (``_tried_though_flagged``); ``fell_back``: it refused the
    URL's password and took the fallback one, which its ``settings`` now hold (``_logged_in``)."""

    name: str
    settings: Settings
    serves: bool
    found: bool = True
    flagged: str = ""
    fell_back: bool = False


def _targets(
    settings: Settings, fallback: str | None = None
) -> tuple[list[_Target], dict[str, str]]:
    """Every server that must hold the user (ACLs are per node), and those left out because
    the sentinels or the cluster report them down (node -> why). A cluster's node that
    refuses the URL's password is asked with ``fallback``, when given; the targets have the
    URL's all the same (``_logged_in`` tries each)."""
    if settings.kind not in ("cluster", "sentinel"):
        return [_Target(settings.url, settings, serves=True, found=False)], {}
    try:
        return _found_targets(settings, settings)
    except (redis.RedisError, OSError) as exc:
        # (the cluster client wraps the refusal of every node it asked: see what caused it)
        refused = any(isinstance(item, redis.AuthenticationError) for item in causes(exc))
        if fallback is None or not refused:
            raise
    return _found_targets(settings, settings.replace(password=fallback))


def _found_targets(settings: Settings, asking: Settings) -> tuple[list[_Target], dict[str, str]]:
    """``_targets`` of a cluster or Sentinel URL, asked with the settings ``asking``."""
    client: Any = sync_client(asking)
    try:
        if settings.kind == "cluster":
            # Every node the cluster knows, replicas included, as CLUSTER NODES lists them.
            up, skipped = _cluster_nodes(settings, client)
        else:
            replicas, skipped = _replicas(client)
            master = client.connection_pool.get_master_address()
            up = [(*master, True, ""), *((host, port, False, why) for host, port, why in replicas)]
    finally:
        client.close()
    targets = [
        _Target(_node(host, port), direct_settings(settings, host, port), serves, flagged=flagged)
        for host, port, serves, flagged in up
    ]
    return targets, skipped


# The CLUSTER NODES flags of a node that cannot be reached, and what each says, the first
# that a node has told: 'fail?' is PFAIL (the node asked has not heard from it within the
# cluster-node-timeout; not failed until most masters agree), 'handshake' a node joining.
_CLUSTER_DOWN = {
    "handshake": "it is still joining the cluster",
    "noaddr": "the cluster knows no address for it",
    "fail": "the cluster reports it failed",
    "fail?": "the cluster reports it not answering, not failed yet",
}


def _tried_though_flagged(down: list[str], serves: bool) -> bool:
    """Whether a node flagged ``down`` is tried all the same. 'fail?' is the opinion of the
    node asked alone (a network problem between the two, say): this machine may reach it. A
    failed node that still holds hash slots (no replica took them over) may be back (the
    cluster clears the flag once it answers and twice its cluster-node-timeout has passed
    since it failed), and its slots' clients are sent to it. Others flagged 'fail'
    (replicas, a master a failover replaced) are not: most masters report them down. Nor
    are nodes without an address, or joining: there is nothing to dial, or no member yet."""
    if "noaddr" in down or "handshake" in down:
        return False
    return "fail?" in down or serves


def _cluster_nodes(
    settings: Settings, client: Any
) -> tuple[list[tuple[str, int, bool, str]], dict[str, str]]:
    """host (the one it is dialled by: ``_dialled_host``), port, whether it holds hash slots
    and why it is flagged down ("" when it is not) of every node in CLUSTER NODES (redis-py
    parses it to a dict) to try, and those its flags say cannot be reached (node -> why).
    One of those that holds slots fails the apply (``_master_unreachable``): left out, its
    slots' clients would be refused."""
    asked = client.get_default_node()
    nodes = dict(client.execute_command("CLUSTER NODES", target_nodes=asked))
    named = any(node.get("hostname") for node in nodes.values())
    endpoints = _preferred_endpoints(client, asked) if named else {}
    up: list[tuple[str, int, bool, str]] = []
    skipped: dict[str, str] = {}
    for address, node in nodes.items():
        flags = str(node.get("flags", "")).split(",")
        ip, _, port = str(address).split("@", 1)[0].rpartition(":")
        host = _dialled_host(ip.strip("[]"), node, flags, endpoints, asked.host)
        serves = bool(node.get("slots"))
        down = [flag for flag in _CLUSTER_DOWN if flag in flags]
        why = f"{_CLUSTER_DOWN[down[0]]} ({', '.join(down)})" if down else ""
        if not down or _tried_though_flagged(down, serves):
            up.append((host, int(port), serves, why))
            continue
        # (a node with no address is shown as ':0': named by its id instead)
        name = _node(host, int(port)) if host and int(port) else f"node {node.get('node_id')}"
        if serves:
            raise _master_unreachable(settings, name, why, applied=[])
        skipped[name] = why
    return up, skipped


def _preferred_endpoints(client: Any, asked: Any) -> dict[str, str]:
    """Node id -> the endpoint CLUSTER SHARDS (Redis 7+, as host names are) gives for it:
    the one its clients dial, as the node ``asked`` picks it by its
    cluster-preferred-endpoint-type (CLUSTER SLOTS, which redis-py reads, gives the same)."""
    reply = client.execute_command("CLUSTER SHARDS", target_nodes=asked)
    return {node.id: node.endpoint for _, nodes in cluster_shards(reply) for node in nodes}


def _dialled_host(
    ip: str,
    node: Mapping[str, Any],
    flags: list[str],
    endpoints: Mapping[str, str],
    asked_host: str,
) -> str:
    """The host a node of CLUSTER NODES is dialled by, as redis-py's cluster client reaches
    it: the host name it announces (cluster-announce-hostname, shown ``IP:PORT@BUS,NAME``)
    when the cluster prefers host names (``endpoints``; a TLS certificate may name the host
    alone), else its IP. The node asked that has met no other knows no IP of its own
    (``:PORT``): it is dialled by the host it was reached at, as redis-py does with the
    empty host CLUSTER SLOTS gives for it."""
    hostname = str(node.get("hostname") or "")
    if hostname and endpoints.get(str(node.get("node_id"))) == hostname:
        return hostname
    if not ip and "myself" in flags:
        return str(asked_host)
    return ip


def _replicas(client: Any) -> tuple[list[tuple[str, int, str]], dict[str, str]]:
    """The replicas to try that the sentinels list for the service of ``client`` (a Sentinel
    URL's), each with why it is flagged ("" for none), and those they report down (node ->
    why: they cannot be reached, and must be told to the user, who applies again once they
    are back). Asked through the URL's own sentinels:
    with its TLS options, as it asks for the master. (A Sentinel made without them was refused
    by TLS sentinels, which redis-py takes for no replica: the user went to the master alone,
    and was missing after a failover.) As redis-py's ``discover_slaves``: the first sentinel
    that answers with a replica up says which are up; else the first that answers, none.
    Down is as swarm doctor counts it (``sentinel_down``); but one flagged ``disconnected``
    alone is tried all the same, as the cluster's ``fail?`` is (``_tried_though_flagged``):
    it is the sentinel's link that is down, redialled at once (a busy machine drops one that
    is slow to answer a PING), and this machine may reach the replica; if it does not, it is
    left out saying both. One up that does not follow its master while the master is up
    (its master-link-status not ok: most often it cannot log in there) is left out too, as
    swarm doctor counts it out of the replicas up, in its words (``sentinel_link_down``):
    the user is applied there once its link is fixed and the command run again."""
    pool = client.connection_pool
    answered: list[dict[str, str]] | None = None
    by: Any = None  # the sentinel whose list is taken
    for sentinel in pool.sentinel_manager.sentinels:
        try:
            listed = sentinel_replicas(sentinel, pool.service_name)
        except (redis.ConnectionError, redis.ResponseError, redis.TimeoutError):
            continue
        if answered is None:
            # (should no sentinel see one up, the first says which are down)
            answered, by = listed, sentinel
        if any(not sentinel_down(entry) for entry in listed):
            answered, by = listed, sentinel
            break
    master = _master_up(by, pool.service_name) if answered else None
    up: list[tuple[str, int, str]] = []
    skipped: dict[str, str] = {}
    for entry in answered or []:
        host, port = entry.get("ip", ""), int(entry.get("port") or 0)
        down = sentinel_down(entry)
        if not down and master is not None and sentinel_unlinked(entry):
            # Up, but not following the master, which is up (a login it refuses, most often):
            # not counted up, as swarm doctor counts it (``_topology``'s words).
            skipped[_node(host, port)] = "it " + sentinel_link_down(
                _node(host, port), master, entry
            )
        elif down == ["disconnected"]:
            up.append((host, port, "the sentinels' link to it is down (disconnected)"))
        elif down:
            # The most telling flag: a replica s_down is disconnected now and then as well (the
            # sentinel drops a link that does not answer, and dials again), which adds nothing.
            skipped[_node(host, port)] = f"the sentinels report it down ({down[0]})"
        else:
            up.append((host, port, ""))
    return up, skipped


def _master_up(sentinel: Any, service: str) -> str | None:
    """The master of ``service`` as ``sentinel`` lists it (``host:port``) when it does not
    report it down; None when it does, or does not say (a replica's link is then down with
    its master's, and a failover may promote it: it is tried, as ever)."""
    try:
        fields = reply_fields(sentinel.execute_command("SENTINEL", "MASTER", service))
    except (redis.ConnectionError, redis.ResponseError, redis.TimeoutError):
        return None
    return None if sentinel_down(fields) else f"{fields.get('ip')}:{fields.get('port')}"


def _node(host: str, port: int) -> str:
    return f"{host}:{port}"
