"""``swarm up``, ``swarm down``, ``swarm doctor``: the server the swarm lives on."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from .._embedded import Binary, EmbeddedServer, find_redis_server, same_file
from .._errors import PermissionDenied, SwarmError
from .._models import iso
from ._app import EXIT_ERROR, App, json_option, main, pass_app


def _embedded(app: App) -> EmbeddedServer:
    settings = app.settings
    return EmbeddedServer(settings.home, durability=settings.durability)


@main.command(short_help="Start the embedded server (idempotent) and print its URL.")
@json_option
@pass_app
def up(app: App) -> None:
    """Start the embedded server (idempotent), load the swarm's function library on it (run
    it as an admin user: workers may not load it), and print the URL other processes use."""
    settings = app.settings
    if settings.kind != "embedded":
        latency = app.swarm.ping()
        data = {"url": settings.url, "started": False, "ping_ms": round(latency, 3)}
        data["functions"] = app.swarm.load_functions()
        app.emit(data, lambda: click.echo(settings.url))
        return
    server = _embedded(app)
    was_running = server.is_running()
    server.ensure_running()
    data = {
        "url": server.url,
        "started": not was_running,
        "pid": server.pid(),
        "home": str(server.home),
        # False: the server has no Functions (Redis 6.2): scripts run by EVALSHA
        "functions": app.swarm.load_functions(),
    }
    app.emit(data, lambda: click.echo(server.url))


@main.command(short_help="Stop the embedded server cleanly (its data is kept).")
@json_option
@pass_app
def down(app: App) -> None:
    """Stop the embedded server cleanly; its data is kept for the next start."""
    if app.settings.kind != "embedded":
        raise SwarmError(
            f"'swarm down' stops only the embedded server; {app.settings.url} is not one"
        )
    stopped = _embedded(app).stop()
    app.emit(
        {"stopped": stopped},
        lambda: click.echo("stopped" if stopped else "the embedded server was not running"),
    )


def _persistence(aof_enabled: bool | None, fsync: str | None) -> str:
    if aof_enabled is None:
        return "unknown (this user may not read INFO)"
    return ("aof " + (fsync or "?")) if aof_enabled else "none (no AOF)"


def _choice(chosen: Binary, running: str | None) -> str:
    """Which redis-server the embedded default runs, and why (the running one may be older)."""
    text = f"{chosen.path} ({chosen.version}): {chosen.reason}"
    if running and not same_file(running, chosen.path):
        text += f"; the running server is {running}: 'swarm down' then 'swarm up' to switch"
    return text


def _corrupt(found: dict[str, list[str]] | str) -> str:
    if isinstance(found, str):
        return found
    named = [f"{kind} {record_id}" for kind, ids in found.items() for record_id in ids]
    if not named:
        return "none"
    shown = ", ".join(named[:10]) + (f" and {len(named) - 10} more" if len(named) > 10 else "")
    return (
        f"{len(named)}: {shown} (written around redis-swarm; listings skip them: rewrite "
        "or delete each from Redis)"
    )


@main.command(short_help="Check the server, its settings and the swarm's records.")
@json_option
@pass_app
def doctor(app: App) -> None:
    """Check the server: binary, version, URL, persistence, memory, PING latency, and the
    swarm's records: how many are stored unreadable (listings skip them)."""
    settings = app.settings
    report: dict[str, Any] = {"url": settings.url, "swarm": settings.swarm, "kind": settings.kind}
    chosen = find_redis_server() if settings.kind == "embedded" else None
    swarm = app.swarm
    latency = min(swarm.ping() for _ in range(5))
    info = swarm.server_info()
    report.update(
        ok=True,
        version=info.version,
        mode=info.mode,
        binary=info.executable or (chosen.path if chosen else None),
        persistence=_persistence(info.aof_enabled, info.appendfsync),
        used_memory_bytes=info.used_memory,
        maxmemory_bytes=info.maxmemory,
        maxmemory_policy=info.maxmemory_policy,
        durability=swarm.durability(),
        ping_ms=round(latency, 3),
        server_time=iso(info.server_time_ms),
    )
    if chosen is not None:
        report["pid"] = _embedded(app).pid()
        report["binary_choice"] = _choice(chosen, info.executable)
    if info.eviction_risk is not None:
        report["warnings"] = [info.eviction_risk]
        report["ok"] = not info.maxmemory  # (a limit set: records can go now)
    try:
        report["corrupt_records"] = swarm.corrupt_records()
    except PermissionDenied as exc:  # a role without HSCAN: the rest of the check stands
        report["corrupt_records"] = f"not checked: {exc}"

    def human() -> None:
        table = Table(show_header=False, box=None)
        for key, value in report.items():
            if key == "warnings":
                continue
            shown = _corrupt(value) if key == "corrupt_records" else str(value)
            table.add_row(f"[bold]{key}[/]", escape(shown))
        app.out.print(table)
        for warning in report.get("warnings", ()):
            app.out.print(f"[yellow]warning:[/] {escape(warning)}")

    app.emit(report, human)
    if not report["ok"]:
        sys.exit(EXIT_ERROR)
