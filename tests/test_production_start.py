"""The production start of SPEC §3 as Heroku runs it: `collectstatic` (the build), then the
Procfile's own `release` and `web` lines through the shell with `PORT` set, from the repository
root with DJANGO_DEBUG=0 and nothing but the documented environment (PostgreSQL through
DATABASE_URL whenever the run has it, as under CI; Redis), then spoken to over plain HTTP and a
websocket.

The environment is built from scratch (not inherited from the test process, whose testenv sets
test-only knobs): PATH with the virtualenv first, the documented variables, and the fake
Anthropic API as the model (`ANTHROPIC_API_KEY` set, so the default provider is `anthropic`).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.conftest import WsConnect
from tests.fakes import Reply
from tests.fakes.anthropic_api import FakeAnthropic
from tests.support import REPO_ROOT, end_process, log_tail, python_executable, spawn, wait_until
from tests.support.auth import csrf_form_token, http_login, http_request
from tests.support.daphne import http_status, static_lock
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer
from tests.support.wsclient import follow_reply

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

VENV_BIN = Path(python_executable()).parent
SECRET = "production-start-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"


def procfile_command(process: str) -> str:
    """The Procfile's command line for `process`, exactly as written."""
    for line in (REPO_ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() == process:
            return command.strip()
    raise AssertionError(f"the Procfile has no `{process}:` process")


def procfile_argv(process: str) -> list[str]:
    """How Heroku runs a Procfile line: through bash, which expands $PORT and the rest."""
    return ["bash", "-c", f"exec {procfile_command(process)}"]


def run_release(env: Mapping[str, str], timeout: float = 120) -> str:
    """The Procfile's `release` line, as Heroku's release phase runs it; its output."""
    result = subprocess.run(
        procfile_argv("release"),
        cwd=REPO_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"release failed:\n{output[-4000:]}"
    return output


def production_env(**values: str) -> dict[str, str]:
    """A clean environment: no test knobs, the virtualenv's commands first on PATH."""
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(values)
    return env


def manage(env: Mapping[str, str], *args: str, timeout: float = 120) -> str:
    """`python manage.py ARGS` from the repository root; its output, or a failure with it."""
    result = subprocess.run(
        ["python", "manage.py", *args],
        cwd=REPO_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{output[-4000:]}"
    return output


@pytest.fixture
def prod_env(
    test_database_url: str, private_redis: RedisServer, fake_anthropic: FakeAnthropic
) -> dict[str, str]:
    """Production settings; a redis-server of its own, so nothing another test left in the
    session's Redis (locks, an open circuit breaker) can change what this start sees."""
    return production_env(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=SECRET,
        DATABASE_URL=test_database_url,
        REDIS_URL=private_redis.url,
        ANTHROPIC_API_KEY="test-key",
        ANTHROPIC_BASE_URL=fake_anthropic.base_url,
    )


def somaxconn() -> int:
    return int(Path("/proc/sys/net/core/somaxconn").read_text())


def listen_backlog(port: int) -> int:
    """The accept-queue size of the socket listening on `port` (`ss`: Send-Q of a listener)."""
    out = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return int(out.split()[2])


def start_web(env: Mapping[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The Procfile's web process on a free port, once GET /healthz answers 200."""
    port = free_port()
    proc = spawn(
        procfile_argv("web"), log_path=log_path, env={**env, "PORT": str(port)}, cwd=REPO_ROOT
    )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"web exited with {proc.returncode}:\n{log_tail(log_path)}")
        return http_status(f"{base}/healthz", timeout=2)[0] == 200

    try:
        wait_until(healthy, timeout=40, interval=0.1, what="the web process's /healthz")
    except BaseException:
        end_process(proc, signal.SIGKILL, 5)
        raise
    return proc, base


async def test_production_start_serves_pages_static_files_and_streams(
    prod_env: dict[str, str],
    fake_anthropic: FakeAnthropic,
    ws_connect: WsConnect,
    unique: object,
    tmp_path: Path,
) -> None:
    assert callable(unique)
    with static_lock():
        manage(prod_env, "collectstatic", "--noinput")
    assert "migrate" in procfile_command("release")
    run_release(prod_env)
    admin = unique("admin")
    manage(
        {
            **prod_env,
            "DJANGO_SUPERUSER_USERNAME": admin,
            "DJANGO_SUPERUSER_PASSWORD": "a-strong-pass-123",
            "DJANGO_SUPERUSER_EMAIL": f"{admin}@example.com",
        },
        "createsuperuser",
        "--noinput",
    )

    log_path = tmp_path / "web.log"
    proc, base = start_web(prod_env, log_path)
    try:
        # The listening socket takes a reconnect storm: its accept queue is LISTEN_BACKLOG
        # (capped by the kernel), not Twisted's 50.
        assert listen_backlog(int(base.rsplit(":", 1)[1])) == min(4096, somaxconn())

        # /healthz: 200 with its checks, exactly at that path.
        status, body = http_status(f"{base}/healthz")
        health = json.loads(body)
        assert status == 200 and health["status"] == "ok"
        assert health["checks"] and all(v == "ok" for v in health["checks"].values())

        # Pages need a session; the login form works with real CSRF and yields a sessionid.
        assert http_request("GET", f"{base}/").status == 302
        login_page = http_request("GET", f"{base}/accounts/login/")
        assert login_page.status == 200
        cookies = http_login(base, admin, "a-strong-pass-123")
        assert cookies["sessionid"]

        # A static file the login page links to: the hashed name from the manifest, cached long.
        manifest = json.loads((REPO_ROOT / "staticfiles" / "staticfiles.json").read_text())
        hashed = set(manifest["paths"].values())
        linked = re.findall(r'(?:href|src)="/static/([^"]+)"', login_page.text)
        assert linked, "the login page links no static file"
        assert all(path in hashed for path in linked), (linked, "not hashed names")
        asset = http_request("GET", f"{base}/static/{linked[0]}")
        assert asset.status == 200
        assert asset.body == (REPO_ROOT / "staticfiles" / linked[0]).read_bytes()
        cache = asset.headers.get("Cache-Control", "")
        max_age = re.search(r"max-age=(\d+)", cache)
        assert max_age and int(max_age.group(1)) >= 365 * 24 * 3600, cache
        assert "immutable" in cache, cache  # hashed names never change
        # Compressed for clients that accept it (whitenoise serves the .gz collectstatic made).
        stylesheet = next(path for path in linked if path.endswith(".css"))
        plain = (REPO_ROOT / "staticfiles" / stylesheet).read_bytes()
        packed = http_request(
            "GET", f"{base}/static/{stylesheet}", headers={"Accept-Encoding": "gzip"}
        )
        assert packed.status == 200 and packed.headers.get("Content-Encoding") == "gzip"
        assert "Accept-Encoding" in packed.headers.get("Vary", "")
        assert len(packed.body) < len(plain) and gzip.decompress(packed.body) == plain
        assert "max-age=31536000" in packed.headers.get("Cache-Control", "")

        # A free slug offers creation (a GET never creates), the form's POST creates the room,
        # its page renders, then its websocket streams a reply.
        slug = unique("prod")
        room_url = f"{base}/rooms/{slug}/"
        offer = http_request("GET", room_url, cookies=cookies)
        assert offer.status == 200 and "Create this room?" in offer.text
        created = http_request(
            "POST",
            room_url,
            cookies=cookies,
            form={"csrfmiddlewaretoken": csrf_form_token(offer.text)},
            headers={"Origin": base, "Referer": room_url},
        )
        assert created.status == 302, created.text[:300]
        page = http_request("GET", room_url, cookies=cookies)
        assert page.status == 200 and f"/ws/rooms/{slug}/" in page.text

        fake_anthropic.queue(Reply(chunks=["Served ", "in ", "production ", "mode."]))
        sock = await ws_connect(base.replace("http://", "ws://"), slug, cookies)
        snapshot = await sock.wait_for("room.snapshot")
        assert snapshot["room"]["slug"] == slug and snapshot["room"]["owner"] == admin
        assert snapshot["room"]["provider"] == "anthropic"
        assert snapshot["user"] == {"username": admin} and snapshot["generation"] is None
        mark = sock.mark()
        await sock.send({"type": "message.send", "text": "hello, production"})
        stored = await sock.wait_for("message.created")
        assert stored["message"]["text"] == "hello, production"
        view = await follow_reply(sock, since=mark, heal=False, silence_sync=None)
        assert view.check() == "Served in production mode."
        assert view.finished is not None and view.finished["status"] == "complete"
        [request] = fake_anthropic.requests
        assert request.headers["authorization"] == "Bearer test-key"
    except BaseException:
        print(f"web log:\n{log_tail(log_path, 80)}")  # shown with the failure
        raise
    finally:
        end_process(proc, signal.SIGTERM, 15)
    log = log_path.read_text(errors="replace")
    assert SECRET not in log and "test-key" not in log
    # With debug off every line is one JSON object (LOG_FORMAT defaults to json): the Procfile
    # sends daphne's own plain-text access log to /dev/null (Heroku's router logs requests).
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines, "the web process logged nothing"
    not_json = [line for line in lines if not _is_json_object(line)]
    assert not not_json, not_json[:5]


def test_the_server_refuses_to_start_without_a_secret_key_when_debug_is_off(
    test_database_url: str, private_redis: RedisServer, tmp_path: Path
) -> None:
    env = production_env(
        DJANGO_DEBUG="0", DATABASE_URL=test_database_url, REDIS_URL=private_redis.url
    )
    log_path = tmp_path / "web.log"
    env_port = {**env, "PORT": str(free_port())}
    proc = spawn(procfile_argv("web"), log_path=log_path, env=env_port, cwd=REPO_ROOT)
    try:
        code = proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        end_process(proc, signal.SIGKILL, 5)
        raise AssertionError(
            f"web kept running without DJANGO_SECRET_KEY:\n{log_tail(log_path)}"
        ) from None
    output = log_path.read_text(errors="replace")
    assert code != 0
    assert "DJANGO_SECRET_KEY must be set" in output, output[-2000:]

    # The release phase refuses too, with the same message.
    result = subprocess.run(
        procfile_argv("release"),
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stdout + result.stderr


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
