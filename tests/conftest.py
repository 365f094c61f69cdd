"""Shared fixtures: the per-run test database, and real servers for process tests.

Process tests talk to daphne processes that open their own database connections, so whatever
the test writes must be committed. Any test that uses `server_env` (directly or through
`daphne_pair` / `daphne_factory`) is therefore marked `django_db(transaction=True)` and
`processes` automatically; a non-transactional `django_db` marker on such a test is an error.
Committed rows are flushed after each test, but Redis state (locks, presence, rate limits) is
not: use `unique_name()` for room slugs and usernames.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import pytest

from tests import testenv
from tests.support.daphne import DaphneProcess, collect_static
from tests.support.redis_server import RedisServer, RedisServerError, redis_binary
from tests.support.wsclient import SAME_ORIGIN, RoomSocket, SameOrigin

if TYPE_CHECKING:
    from tests.fakes.anthropic_api import FakeAnthropic

# Fixtures that make a test a "process test".
_PROCESS_FIXTURES = frozenset(
    {"server_env", "daphne_pair", "daphne_factory", "redis_server", "private_redis"}
)
_watched_logs = pytest.StashKey[list[tuple[DaphneProcess, int]]]()


# --- collection -----------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark process tests; give those that reach the servers committed (transactional) data."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & _PROCESS_FIXTURES:
            item.add_marker(pytest.mark.processes)
        if "server_env" in names and item.get_closest_marker("django_db") is None:
            # Before pytest-django's own hook, which orders tests by this marker.
            item.add_marker(pytest.mark.django_db(transaction=True))


def _is_transactional(marker: pytest.Mark) -> bool:
    return bool(marker.kwargs.get("transaction", marker.args[0] if marker.args else False))


@pytest.fixture(autouse=True)
def _process_tests_need_committed_data(request: pytest.FixtureRequest) -> None:
    """Fail early and clearly when a process test would write rows the servers cannot see."""
    if "server_env" not in request.fixturenames:
        return
    marker = request.node.get_closest_marker("django_db")
    if marker is not None and not _is_transactional(marker):
        pytest.fail(
            "tests using real server processes need committed data: "
            "use @pytest.mark.django_db(transaction=True) (or no marker at all)"
        )


# --- the test database ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One test database per pytest run: several people run the suite on this machine at once.

    PostgreSQL: `test_roomchat_<pid>_<random>` (the random part guards against equal pids in
    separate containers). SQLite: a file, not :memory:, because the daphne processes share it.
    """
    from django.conf import settings

    run = f"{os.getpid()}_{secrets.token_hex(3)}"
    for alias, database in settings.DATABASES.items():
        suffix = "" if alias == "default" else f"_{alias}"
        test = database.setdefault("TEST", {})
        if database["ENGINE"] == "django.db.backends.sqlite3":
            folder = tmp_path_factory.mktemp("db")
            test["NAME"] = str(folder / f"test_roomchat_{run}{suffix}.sqlite3")
        else:
            test["NAME"] = f"test_roomchat_{run}{suffix}"
            # The servers under test keep the production pool (DATABASE_POOL_MAX); this test
            # process does not: its sync_to_async threads have no request cycle to hand their
            # connections back, so a pool of 8 ran dry after 8 of them (PoolTimeout).
            database.get("OPTIONS", {}).pop("pool", None)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """pytest-django's, plus: end other sessions on the test database before it is dropped.

    Connections opened in sync_to_async threads (and by any server process that outlived its
    fixture) would otherwise make PostgreSQL refuse DROP DATABASE.
    """
    yield
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        if connection.vendor != "postgresql":
            continue
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


def database_url(settings_dict: Mapping[str, Any]) -> str:
    """A dj-database-url URL for a connection's settings (after the test database was set up)."""
    engine = settings_dict["ENGINE"]
    name = str(settings_dict["NAME"])
    if engine == "django.db.backends.sqlite3":
        return f"sqlite:///{Path(name).resolve()}"
    if "postgresql" not in engine:
        raise NotImplementedError(f"server_env cannot pass a {engine} database to daphne")
    quote = urllib.parse.quote
    user = quote(settings_dict.get("USER") or "", safe="")
    password = settings_dict.get("PASSWORD") or ""
    credentials = (
        f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    )
    host = quote(settings_dict.get("HOST") or "localhost", safe="")
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    options = {k: v for k, v in (settings_dict.get("OPTIONS") or {}).items() if isinstance(v, str)}
    query = f"?{urllib.parse.urlencode(options)}" if options else ""
    return f"postgres://{credentials}{host}{port}/{quote(name, safe='')}{query}"


@pytest.fixture(scope="session")
def test_database_url(django_db_setup: None) -> str:
    """URL of the test database pytest-django created, for other processes to connect to."""
    from django.db import connection

    test_name = connection.settings_dict.get("TEST", {}).get("NAME")
    if connection.settings_dict["NAME"] != test_name:
        raise RuntimeError(
            "the test database is not set up: a test using server processes must use the "
            "database (transactional_db / django_db(transaction=True))"
        )
    return database_url(connection.settings_dict)


# --- servers ---------------------------------------------------------------------------------


def _start_redis(workdir: Path) -> RedisServer:
    """A private redis-server; skipped without the binary, except on CI where that is an error."""
    if redis_binary() is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if testenv.ON_CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        return RedisServer(workdir=workdir).start()
    except RedisServerError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """This run's own redis-server (never the shared one on 6379), shared by the session."""
    server = _start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server for one test alone: stop, kill and restart it at will."""
    server = _start_redis(tmp_path / "redis")
    yield server
    server.close()


@pytest.fixture(scope="session", autouse=True)
def collected_static() -> Path:
    """`manage.py collectstatic` with DJANGO_DEBUG=0, once per run (skipped when current).

    Autouse: with debug off, in-process tests that render `{% static %}` need the manifest too.
    """
    return collect_static()


@pytest.fixture(scope="session")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    """The fake Anthropic Messages API server (tests/fakes/anthropic_api.py), one per run."""
    from tests.fakes.anthropic_api import FakeAnthropic

    fake = FakeAnthropic()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _reset_fake_anthropic(request: pytest.FixtureRequest) -> None:
    """Each test that uses the fake starts from its default behaviour."""
    if "fake_anthropic" in request.fixturenames:
        request.getfixturevalue("fake_anthropic").reset()


@pytest.fixture(scope="session")
def server_env(
    test_database_url: str,
    redis_server: RedisServer,
    fake_anthropic: FakeAnthropic,
    collected_static: Path,
) -> Mapping[str, str]:
    """Environment for daphne processes: the test database, the private Redis, the fake model.

    Read-only; build variations with `{**server_env, "NAME": "value"}`.
    """
    from django.conf import settings

    return MappingProxyType(
        {
            "DJANGO_DEBUG": "0",
            "DJANGO_HTTPS": "0",
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,  # so sessions made in tests are valid
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": test_database_url,
            "REDIS_URL": redis_server.url,
            "LLM_PROVIDER": "anthropic",
            "ANTHROPIC_API_KEY": "test-key",
            "ANTHROPIC_BASE_URL": fake_anthropic.base_url,
            "LLM_RETRY_BASE_DELAY": "0.05",
            "STREAM_FLUSH_MS": "20",
            "CHAT_RATE_PER_MINUTE": "1000",
        }
    )


def _watch(request: pytest.FixtureRequest, *processes: DaphneProcess) -> None:
    """Attach what these processes log during the test to its report if it fails."""
    watched = request.node.stash.setdefault(_watched_logs, [])
    watched.extend((process, process.log_size()) for process in processes)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On failure, add what each watched daphne logged since the test began to the report."""
    report = yield
    if report.failed:
        for process, offset in item.stash.get(_watched_logs, []):
            text = process.log_since(offset)
            if text:
                title = f"daphne {process.name} log ({process.log_path})"
                report.sections.append((title, text[-20000:]))
    return report


class DaphnePair(NamedTuple):
    """Two server processes sharing the database and Redis: a room's tabs may sit on either."""

    a: DaphneProcess
    b: DaphneProcess


@contextlib.contextmanager
def running_pair(env: Mapping[str, str], log_dir: Path) -> Iterator[DaphnePair]:
    """Processes "a" and "b" with `env`, started in parallel; both stopped on exit."""
    pair = DaphnePair(
        DaphneProcess(env, name="a", log_dir=log_dir),
        DaphneProcess(env, name="b", log_dir=log_dir),
    )
    try:
        DaphneProcess.start_all(*pair)
        yield pair
    finally:
        for process in pair:
            process.stop()


def ready_pair(request: pytest.FixtureRequest, pair: DaphnePair) -> DaphnePair:
    """`pair` for this test: a process an earlier test stopped, killed or left unhealthy is
    started again (same port), and what both log is attached to the report if it fails."""
    for process in pair:
        process.ensure_running()
    _watch(request, *pair)
    return pair


@pytest.fixture(scope="module")
def _daphne_pair_processes(
    server_env: Mapping[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaphnePair]:
    with running_pair(server_env, tmp_path_factory.mktemp("daphne")) as pair:
        yield pair


@pytest.fixture
def daphne_pair(request: pytest.FixtureRequest, _daphne_pair_processes: DaphnePair) -> DaphnePair:
    """Two running daphne processes, started once per test module.

    A process an earlier test stopped, killed or left unhealthy is started again (same port).
    """
    return ready_pair(request, _daphne_pair_processes)


class DaphneFactory(Protocol):
    def __call__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        name: str | None = None,
        port: int | None = None,
        start: bool = True,
    ) -> DaphneProcess: ...


@pytest.fixture
def daphne_factory(
    request: pytest.FixtureRequest, server_env: Mapping[str, str], tmp_path: Path
) -> Iterator[DaphneFactory]:
    """Make daphne processes for this test only (`server_env` plus `env`); all stopped after it."""
    made: list[DaphneProcess] = []

    def make(
        env: Mapping[str, str] | None = None,
        *,
        name: str | None = None,
        port: int | None = None,
        start: bool = True,
    ) -> DaphneProcess:
        process = DaphneProcess(
            {**server_env, **(env or {})},
            port=port,
            name=name or f"p{len(made) + 1}",
            log_dir=tmp_path / "daphne",
        )
        made.append(process)
        _watch(request, process)
        if start:
            process.start()
        return process

    yield make
    for process in made:
        process.stop()


# --- websockets -----------------------------------------------------------------------------


class WsConnect(Protocol):
    async def __call__(
        self,
        ws_base_url: str,
        slug: str,
        cookie: str | Mapping[str, str] | None = None,
        origin: str | SameOrigin | None = SAME_ORIGIN,
        **options: Any,
    ) -> RoomSocket: ...


@pytest.fixture
async def ws_connect() -> AsyncIterator[WsConnect]:
    """`await ws_connect(url, slug, cookie)`: RoomSocket.connect, closed when the test ends."""
    opened: list[RoomSocket] = []

    async def connect(
        ws_base_url: str,
        slug: str,
        cookie: str | Mapping[str, str] | None = None,
        origin: str | SameOrigin | None = SAME_ORIGIN,
        **options: Any,
    ) -> RoomSocket:
        sock = await RoomSocket.connect(ws_base_url, slug, cookie, origin, **options)
        opened.append(sock)
        return sock

    yield connect
    for sock in opened:
        try:
            await sock.close()
        except Exception:  # the server may be gone already; closing is best effort
            pass


@pytest.fixture
def unique() -> Callable[[str], str]:
    """`unique("room")` → "room-3f9a1c": names no other test (or Redis key) has used."""
    from tests.support import unique_name

    return unique_name
