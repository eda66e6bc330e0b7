"""What a security review found: ``swarm acl --password-stdin --apply`` at a terminal asked
once, so a typo silently changed a user's password (and nothing said it changed); a URL's
``ssl_cert_reqs=optional`` (like ``none``) turned the server's verification off with a word
from ``swarm doctor`` only, and ``swarm acl`` handed it to the agents; an encrypted client
key failed as ``Error 22 ... Invalid argument`` after OpenSSL's pass phrase prompts; a
password written where the user name goes was printed in clear in errors; and the guides'
user setup could turn the default user off as the default user, no admin left. Real
redis-servers (plain and TLS-only), real terminals (a pseudo-terminal), real redis-cli.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cryptography.hazmat.primitives import serialization

import redis_swarm
from redis_swarm import ConnectionFailed, PermissionDenied, Settings, Swarm, apply_role

from ._cli import Cli
from ._pty import on_a_terminal, read_some
from ._servers import RedisServer, ServerFactory
from ._tls import Pki, TlsServer, make_pki, start_tls_server

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
SWARM = "review"
KEPT = "the-password-the-agents-have-0123"
TYPO = "the-password-the-agents-have-0124"


@pytest.fixture(scope="module")
def server(servers: ServerFactory) -> Iterator[RedisServer]:
    """A server of this module's own (its default user an admin with no password)."""
    started = servers.start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_server(servers: ServerFactory, pki: Pki) -> Iterator[TlsServer]:
    """TLS only; client certificates verified when presented."""
    started = start_tls_server(servers, pki, auth_clients="optional")
    yield started
    started.stop()


def _hashes(server: RedisServer, user: str) -> list[str]:
    with redis.Redis(host="127.0.0.1", port=server.port or 0, decode_responses=True) as root:
        found = root.acl_getuser(user)
    return list(found["passwords"]) if found else []


def _sha(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


# --- 1. a password typed to keep it: asked twice, and whether it changed is said ----------


def _type_twice(url: str, user: str, first: str, second: str) -> tuple[int, str]:
    """Run ``swarm acl --role worker --user USER --password-stdin --apply`` at a terminal,
    type ``first`` at its prompt and ``second`` at the next one: its exit code and what the
    terminal showed. A command that asks once only ends without the second prompt."""
    args = ("acl", "--role", "worker", "--user", user, "--password-stdin", "--apply")
    with on_a_terminal(url, *args, SWARM_NAME=SWARM) as (child, leader):
        seen = b""
        deadline = time.monotonic() + 30
        while b"password (not shown)" not in seen and time.monotonic() < deadline:
            seen += read_some(leader, 0.5)
        os.write(leader, first.encode() + b"\n")
        asked_again = False
        while time.monotonic() < deadline:
            chunk = read_some(leader, 0.5)
            seen += chunk
            if b"again (not shown)" in seen:
                asked_again = True
                break
            if child.poll() is not None and not chunk:
                break
        assert asked_again, f"the password was asked once only: {seen.decode()}"
        os.write(leader, second.encode() + b"\n")
        while chunk := read_some(leader, 30):
            seen += chunk
        code = child.wait(timeout=30)
    return code, seen.decode(errors="replace")


def test_a_typo_in_the_password_typed_again_is_refused_nothing_applied(
    server: RedisServer,
) -> None:
    """Typed to keep the password of an existing user, a typo changed it, unseen: the user's
    agents were refused at their next connection. Now asked twice, and two passwords that
    differ are refused (exit 2), the user left as it was."""
    settings = Settings.from_url(server.url, swarm=SWARM)
    apply_role(settings, "worker", "typo-worker", KEPT)
    code, shown = _type_twice(server.url, "typo-worker", KEPT, TYPO)
    assert code == 2, shown
    assert "the two passwords typed for typo-worker differ: nothing was done" in shown, shown
    assert KEPT not in shown and TYPO not in shown  # (not echoed)
    assert _hashes(server, "typo-worker") == [_sha(KEPT)]


def test_the_same_password_typed_twice_is_applied_and_said_kept(server: RedisServer) -> None:
    settings = Settings.from_url(server.url, swarm=SWARM)
    apply_role(settings, "worker", "kept-worker", KEPT)
    code, shown = _type_twice(server.url, "kept-worker", KEPT, KEPT)
    assert code == 0, shown
    assert "# the password of kept-worker was kept" in shown, shown
    assert _hashes(server, "kept-worker") == [_sha(KEPT)]


def test_an_apply_that_changes_the_password_says_so(server: RedisServer) -> None:
    """A password piped (or given) that is not the one the user had: said plainly, on
    stderr and in --json, as is one kept; a new user's is neither."""
    cli = Cli(server.url, swarm=SWARM)
    args = ("acl", "--role", "worker", "--user", "rotated", "--password-stdin", "--apply")
    made = cli.json(*args, input=KEPT + "\n")
    assert (made["password_change"], made["password_note"]) == ("new", None), made

    out = cli(*args, input=TYPO + "\n")
    said = (
        "warning: the password of rotated changed: agents that connect as rotated with the "
        "old one will be refused at their next connection"
    )
    assert said in out.stderr, out
    assert _hashes(server, "rotated") == [_sha(TYPO)]

    data = cli.json(*args, input=TYPO + "\n")
    assert data["password_change"] == "kept", data
    assert data["password_note"].startswith("the password of rotated was kept"), data
    out = cli(*args, input=TYPO + "\n")
    assert "# the password of rotated was kept" in out.stdout, out
    assert "changed" not in out.stderr, out

    data = cli.json(*args, input=KEPT + "\n")
    assert data["password_change"] == "changed", data
    assert data["password_note"].startswith(said.removeprefix("warning: ")), data


def test_a_generated_password_over_an_existing_one_is_said_changed(server: RedisServer) -> None:
    settings = Settings.from_url(server.url, swarm=SWARM)
    apply_role(settings, "worker", "regenerated", KEPT)
    data = Cli(server.url, swarm=SWARM).json(
        "acl", "--role", "worker", "--user", "regenerated", "--apply"
    )  # fmt: skip
    assert data["password_change"] == "changed", data
    assert "the password of regenerated changed" in data["password_note"], data


# --- 2. certificate or host name verification off: said by every handle; not handed on ----


def test_a_handle_that_does_not_check_the_host_name_says_so(tls_server: TlsServer) -> None:
    category = redis_swarm.TlsNotVerified
    for reqs, words in (
        ("optional", "ssl_cert_reqs=optional turns off the check of the server's host name"),
        ("none", "ssl_cert_reqs=none turns off the check of the server's certificate and host"),
    ):
        with pytest.warns(category) as caught, Swarm(f"{tls_server.url}&ssl_cert_reqs={reqs}") as s:
            assert s.ping() >= 0
        (warned,) = [w for w in caught if issubclass(w.category, category)]
        assert words in str(warned.message), warned.message
        assert "is sent the URL's user and password" in str(warned.message)
        assert warned.message.option == f"ssl_cert_reqs={reqs}"  # type: ignore[union-attr]
    with warnings.catch_warnings():  # verified: nothing said
        warnings.simplefilter("error")
        with Swarm(tls_server.url) as verified:
            assert verified.ping() >= 0


def test_swarm_acl_says_it_once_and_leaves_it_out_of_the_agents_url(
    tls_server: TlsServer,
) -> None:
    """The admin URL's ssl_cert_reqs=optional: the apply says once that the password goes to
    a server whose name is not checked, and hands the agents a URL that checks it."""
    admin = f"{tls_server.url}&ssl_cert_reqs=optional"
    cli = Cli(admin, swarm=SWARM)
    out = cli("acl", "--role", "worker", "--user", "tls-worker", "--apply")
    warned = [
        line for line in out.stderr.splitlines() if line.startswith("warning: ssl_cert_reqs=")
    ]
    assert len(warned) == 1, out.stderr
    (agents,) = [line for line in out.stdout.splitlines() if line.startswith("# agents connect")]
    assert "ssl_cert_reqs" not in agents and "ssl_ca_certs=" in agents, agents
    assert "the agents' URL leaves out --url's ssl_cert_reqs=optional" in out.stderr, out

    data = cli.json("acl", "--role", "worker", "--user", "tls-worker", "--apply")
    assert "ssl_cert_reqs" not in data["agent_url"], data
    assert "leaves out --url's ssl_cert_reqs=optional" in data["agent_url_warning"], data

    asked = cli.json(
        "acl", "--role", "worker", "--user", "tls-worker", "--apply", "--agents-unverified-tls"
    )  # fmt: skip
    assert asked["agent_url"].endswith("&ssl_cert_reqs=optional"), asked
    assert "keeps --url's ssl_cert_reqs=optional" in asked["agent_url_warning"], asked


def test_the_agents_url_of_a_verified_url_is_as_it_was(tls_server: TlsServer) -> None:
    data = Cli(tls_server.url, swarm=SWARM).json(
        "acl", "--role", "worker", "--user", "tls-verified", "--redis-version", "7.0"
    )  # fmt: skip
    assert data["agent_url_warning"] is None
    assert data["agent_url"].endswith(f"?ssl_ca_certs={tls_server.pki.ca}"), data  # type: ignore[union-attr]


# --- 3. an encrypted client key ---------------------------------------------------------


def _encrypted(pki: Pki, form: serialization.PrivateFormat, name: str) -> Path:
    key = serialization.load_pem_private_key(pki.client_key.read_bytes(), None)
    path = pki.dir / name
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, form, serialization.BestAvailableEncryption(b"phrase")
        )
    )
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("form", ["pkcs8", "proc-type"])
def test_an_encrypted_client_key_is_said_with_the_fix(
    tls_server: TlsServer, pki: Pki, form: str
) -> None:
    """Said at once, naming the file and the command that writes it unencrypted, with no
    pass phrase prompt (a process with no terminal: before, one per attempt, then Error 22).
    Either PEM form: "BEGIN ENCRYPTED PRIVATE KEY", or "Proc-Type: 4,ENCRYPTED"."""
    formats = {
        "pkcs8": serialization.PrivateFormat.PKCS8,
        "proc-type": serialization.PrivateFormat.TraditionalOpenSSL,
    }
    key = _encrypted(pki, formats[form], f"encrypted-{form}.key")
    url = f"{tls_server.url}&ssl_certfile={pki.client_cert}&ssl_keyfile={key}"
    code = (
        "import sys, time, redis_swarm\n"
        "start = time.monotonic()\n"
        "try:\n"
        "    redis_swarm.Swarm(sys.argv[1], swarm='t').ping()\n"
        "except redis_swarm.ConnectionFailed as exc:\n"
        "    print(exc.retryable, round(time.monotonic() - start, 1))\n"
        "    print(exc)\n"
    )
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH", ""), str(REPO / "src")) if p)
    done = subprocess.run(
        [sys.executable, "-c", code, url], stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=120, env={**os.environ, "PYTHONPATH": path}, start_new_session=True,
    )  # fmt: skip
    assert "pass phrase" not in done.stderr.lower(), done.stderr  # (OpenSSL's prompt)
    head, message = done.stdout.split("\n", 1)
    retryable, elapsed = head.split()
    assert retryable == "False" and float(elapsed) < 2, done.stdout
    assert (
        f"ssl_keyfile {key} is encrypted (a pass phrase): give an unencrypted key "
        f"(openssl pkey -in {key} -out plain.key)"
    ) in message, message


def test_an_encrypted_key_in_the_certificate_file_is_said_too(
    tls_server: TlsServer, pki: Pki
) -> None:
    key = _encrypted(pki, serialization.PrivateFormat.PKCS8, "bundle-key.pem")
    bundle = pki.dir / "bundle.pem"
    bundle.write_bytes(pki.client_cert.read_bytes() + key.read_bytes())
    with (
        Swarm(f"{tls_server.url}&ssl_certfile={bundle}") as swarm,
        pytest.raises(ConnectionFailed) as info,
    ):
        swarm.ping()
    assert f"ssl_certfile {bundle} holds an encrypted private key" in str(info.value)
    assert not info.value.retryable


# --- 4. a password written where the user name goes -------------------------------------


@pytest.mark.parametrize("userinfo", ["SeCrEt", "u%3ASeCrEt"])
def test_a_password_written_as_the_user_name_is_not_shown(
    server: RedisServer, userinfo: str
) -> None:
    url = f"redis://{userinfo}@127.0.0.1:{server.port}"
    with Swarm(url) as swarm, pytest.raises(PermissionDenied) as info:
        swarm.ping()
    said = str(info.value)
    assert "SeCrEt" not in said, said
    assert f"authentication failed on redis://***@127.0.0.1:{server.port}/0" in said, said
    assert (
        "a URL of the form redis://PASSWORD@host gives a user name, not a password: write "
        "redis://:PASSWORD@host"
    ) in said, said
    assert "SeCrEt" not in Settings.from_url(url).url
    # the apply's own refusal of the URL's user (ACL GETUSER-free): not named either
    out = Cli(url, swarm=SWARM)("acl", "--role", "worker", "--user", "w", "--apply", expect=1)
    assert "SeCrEt" not in out.stdout + out.stderr, out
    assert "redis://:PASSWORD@host" in out.stderr, out


def test_a_user_name_beside_a_password_is_shown() -> None:
    """A user name with its password is no secret: errors keep naming it (which user)."""
    assert Settings.from_url("redis://ops:pw-0123456789@h:1").url == "redis://ops:***@h:1/0"
    # a user name and a password run together (its ':' percent-encoded): masked
    assert Settings.from_url("redis://ops%3Apw:x@h:1").url == "redis://***:***@h:1/0"


# --- 5. the guides' user setup: the admin checked before the default user goes off --------

_WHOAMI = re.compile(r"--user ops --askpass ACL WHOAMI")


@pytest.mark.parametrize("doc", ["security.md", "deployment.md"])
def test_the_guides_check_the_admin_before_turning_the_default_user_off(doc: str) -> None:
    text = (DOCS / doc).read_text()
    first_off = text.index("ACL SETUSER default off resetpass")
    check = _WHOAMI.search(text)
    assert check is not None and check.start() < first_off, doc
    assert "must print `ops`" in text[check.start() - 800 : first_off + 1200], doc


def test_redis_cli_carries_on_as_the_default_user_when_the_admin_is_refused(
    server: RedisServer,
) -> None:
    """What the guides' check guards against: redis-cli whose --user is refused warns and
    runs the command as the default user all the same (exit 0), which ACL WHOAMI shows."""
    cli = shutil.which("redis-cli", path="/usr/bin") or shutil.which("redis-cli")
    if cli is None:
        pytest.skip("no redis-cli")
    done = subprocess.run(
        [cli, "-p", str(server.port), "--user", "ops", "--askpass", "ACL", "WHOAMI"],
        input="not-its-password\n", capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "default", done
    assert "AUTH failed" in done.stderr, done


# --- docs --------------------------------------------------------------------------------


def test_security_md_names_optional_and_the_encrypted_key() -> None:
    text = (DOCS / "security.md").read_text()
    assert "`ssl_cert_reqs=optional`" in text
    assert "TlsNotVerified" in text and "--agents-unverified-tls" in text
    assert "is encrypted (a pass phrase): give an unencrypted key" in text


# --- 6. a user name that may be a password: masked wherever a user is named -------------

PASSWORD_AS_NAME = "s3cretpassword12345"


def test_the_doctor_of_an_unreachable_server_masks_a_password_as_user() -> None:
    """The doctor's user row, text and JSON, as its url row shows the user: masked."""
    cli = Cli(f"redis://{PASSWORD_AS_NAME}@127.0.0.1:1", swarm=SWARM)
    text = cli("doctor", expect=1)
    assert PASSWORD_AS_NAME not in text.stdout + text.stderr, text
    assert re.search(r"^\s*user\s+\*\*\*\s*$", text.stdout, re.MULTILINE), text
    said = cli("doctor", "--json", expect=1)
    assert PASSWORD_AS_NAME not in said.stdout + said.stderr, said
    assert said.json()["user"] == "***", said


def test_a_refusal_of_the_swarm_masks_a_password_as_user(server: RedisServer) -> None:
    """A user named like a password (no password: it logs in with nopass) that may not read
    the swarm: the doctor's words on it (the warning, the records row) mask its name."""
    with redis.Redis(host="127.0.0.1", port=server.port or 0) as root:
        root.execute_command(
            "ACL", "SETUSER", PASSWORD_AS_NAME, "on", "nopass", "~other:*", "+@all"
        )
    try:
        cli = Cli(f"redis://{PASSWORD_AS_NAME}@127.0.0.1:{server.port}", swarm=SWARM)
        out = cli("doctor", "--json", expect=1)
        assert PASSWORD_AS_NAME not in out.stdout + out.stderr, out
        report = out.json()
        assert report["user"] == "***", report
        assert any("the Redis user '***' may not read" in w for w in report["warnings"]), report
    finally:
        with redis.Redis(host="127.0.0.1", port=server.port or 0) as root:
            root.execute_command("ACL", "DELUSER", PASSWORD_AS_NAME)


def test_settings_show_one_user_name() -> None:
    """``Settings.shown_user``: what every message names the user by."""
    assert Settings.from_url(f"redis://{PASSWORD_AS_NAME}@h:1").shown_user == "***"
    assert Settings.from_url("redis://ops%3Apw:x@h:1").shown_user == "***"
    assert Settings.from_url("redis://ops:pw-0123456789@h:1").shown_user == "ops"
    assert Settings.from_url("redis://:pw-0123456789@h:1").shown_user == "default"
