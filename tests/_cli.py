"""Helpers for CLI tests: invoke ``swarm`` in process (CliRunner) or as a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from redis_swarm.cli import main

SRC = str(Path(__file__).resolve().parent.parent / "src")


@dataclass
class Out:
    """What one invocation printed and returned."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return (
            f"Out(code={self.code}, stdout={self.stdout[:2000]!r}, stderr={self.stderr[:2000]!r})"
        )


class Cli:
    """``swarm`` bound to one server and swarm, run in process through click's CliRunner."""

    def __init__(self, url: str, swarm: str = "test", env: Mapping[str, str] | None = None):
        self.url = url
        self.swarm = swarm
        self.env = {"SWARM_URL": url, "SWARM_NAME": swarm, **(env or {})}

    def __call__(
        self,
        *args: str,
        input: str | bytes | None = None,
        env: Mapping[str, str | None] | None = None,
        expect: int | None = 0,
    ) -> Out:
        runner = CliRunner()
        result = runner.invoke(
            main,
            list(args),
            input=input,
            env={**self.env, **(env or {})},
            catch_exceptions=False,
            prog_name="swarm",  # (as a user types it: hints name the command so)
        )
        out = Out(result.exit_code, result.stdout, result.stderr)
        if expect is not None:
            assert out.code == expect, out
        return out

    def json(self, *args: str, input: str | bytes | None = None, **kw: Any) -> Any:
        return self(*args, "--json", input=input, **kw).json()


def swarm_bin(directory: Path) -> Path:
    """A ``swarm`` executable running this checkout (not whatever is installed), in
    ``directory``; put it first on PATH."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "swarm"
    path.write_text(
        f"#!/bin/sh\nPYTHONPATH={SRC}${{PYTHONPATH:+:$PYTHONPATH}} exec {sys.executable} "
        '-m redis_swarm "$@"\n'
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def subprocess_env(url: str, swarm: str, bindir: Path) -> dict[str, str]:
    """The environment of a real process of this checkout: ``bindir`` (a folder, e.g. the
    one ``swarm_bin`` wrote into) first on PATH."""
    assert not bindir.is_file(), f"{bindir} is a file: pass its folder"
    env = dict(os.environ)
    env.update(
        SWARM_URL=url,
        SWARM_NAME=swarm,
        PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=SRC,
    )
    return env


def run_swarm(
    args: Sequence[str], env: Mapping[str, str], *, input: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    """``python -m redis_swarm ARGS`` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "redis_swarm", *args],
        input=input,
        env=dict(env),
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def interrupt(proc: subprocess.Popen[Any], sig: int = signal.SIGINT) -> None:
    """Ctrl-C a command a test started (a face's server), as its user would (or send it
    ``sig``: SIGTERM, as a service manager stops it); killed if it has not ended within
    20 s."""
    proc.send_signal(sig)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie waiting to be reaped by its new parent does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
