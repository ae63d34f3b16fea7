"""`zynk up --distributed`: every service as its own OS process on its own port, plus the
gateway, with N processes of a kind where asked (`--replicas gateway=2,messaging=2`).

What the supervisor does, in order:
1. checks the configuration (shared backends: Kafka and Redis; PostgreSQL or SQLite; a port
   per service, each free) and takes the mesh's internal credential from configuration or
   generates one for this run; the children get the whole effective configuration, the
   credential included, in their environment (never printed);
2. runs the PostgreSQL migrations (`run_migrations` below: the single call site);
3. starts every service process (`zynk serve <service>`) and waits until each says READY,
   then the gateway processes; any failure at this point stops everything (exit 1);
4. prints the banner, then watches: a child that dies is reported loudly on stderr and, by
   default, restarted with exponential backoff (mesh.restart*; with mesh.restart=false the
   whole mesh stops and exits 1 instead). Nothing is restarted silently;
5. on Ctrl-C/SIGTERM, stops the gateways first (clients drained), then the services, each
   with SIGTERM and its grace period, SIGKILL after that; a second Ctrl-C kills at once.

Children run in their own process group (a terminal's Ctrl-C reaches only the supervisor,
which stops them in order) and hold one end of a socket pair each: if the supervisor dies
without stopping them, they see end-of-file and stop themselves (mesh/serve.py)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import json
import os
import secrets
import signal
import socket
import sys
import time

from mesh.process import (
    GATEWAY,
    NOT_BUILT,
    ConfigError,
    backend_lines,
    check_distributed_backends,
    internal_token,
    is_built,
)
from services.runtime.catalog import CATALOG
from services.runtime.config import Settings

MAX_REPLICAS = 64


class StartFailed(Exception):
    """A child did not come up; the message says which and why."""


def parse_replicas(text: str | None) -> dict[str, int]:
    """"gateway=2,messaging=3" -> {"gateway": 2, "messaging": 3}."""
    out: dict[str, int] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, count = item.partition("=")
        name = name.strip()
        if not sep or name not in (*CATALOG, GATEWAY):
            raise ConfigError(f"--replicas: {item!r} is not <service>=<count> with a service "
                              f"among {', '.join([*CATALOG, GATEWAY])}")
        try:
            n = int(count)
        except ValueError:
            raise ConfigError(f"--replicas: {item!r}: the count must be a number") from None
        if not 1 <= n <= MAX_REPLICAS:
            raise ConfigError(f"--replicas: {item!r}: between 1 and {MAX_REPLICAS} processes")
        out[name] = n
    return out


def parse_services(text: str | None) -> list[str]:
    """"auth,group" -> ["auth", "group"] in catalogue order; empty: every service."""
    if not text:
        return list(CATALOG)
    chosen = {s.strip() for s in text.split(",") if s.strip()}
    unknown = sorted(chosen - CATALOG.keys())
    if unknown:
        raise ConfigError(f"--services: no service named {', '.join(unknown)}")
    return [s for s in CATALOG if s in chosen]


async def run_migrations(settings: Settings) -> dict[str, list[str]] | None:
    """THE call site for PostgreSQL migrations: run once, before any service process opens a
    pool. Nothing to do on SQLite (each service migrates its own file when it opens it).

    It needs `services.runtime.migrate.migrate_on_start(settings)`: an async function that
    applies every service's pending migrations (idempotent, safe to run concurrently) and
    returns {service: [migration ids applied]}, raising when the database cannot be
    reached or a migration fails."""
    if settings.backends.storage != "postgres":
        return None
    if importlib.util.find_spec("services.runtime.migrate") is None:
        raise ConfigError("backends.storage=postgres, but this build has no migrations "
                          "runner (services/runtime/migrate.py)")
    from services.runtime.migrate import migrate_on_start

    return await migrate_on_start(settings)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


@dataclasses.dataclass
class Child:
    target: str  # a service name or "gateway"
    replica: int  # 1-based
    replicas: int
    port: int
    proc: asyncio.subprocess.Process | None = None
    lifeline: asyncio.StreamWriter | None = None
    started_at: float = 0.0
    restarts: int = 0
    delay_s: float = 0.0

    @property
    def label(self) -> str:
        return self.target if self.replicas == 1 else f"{self.target}#{self.replica}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def close_lifeline(self) -> None:
        if self.lifeline is not None:
            self.lifeline.close()
            self.lifeline = None


def _say(message: str) -> None:
    print(f"zynk: {message}", file=sys.stderr, flush=True)


class Supervisor:
    def __init__(self, settings: Settings, replicas: dict[str, int] | None = None,
                 services: list[str] | None = None) -> None:
        self.settings = settings
        self.replicas = dict(replicas or {})
        self.services = list(services) if services is not None else list(CATALOG)
        self.children: list[Child] = []
        self.migrated: dict[str, list[str]] | None = None
        self.failure: str | None = None
        self._token_source = ""
        self._env: dict[str, str] = {}
        self._stopping = False
        self._done = asyncio.Event()
        self._keepers: list[asyncio.Task] = []

    # -- configuration ---------------------------------------------------------------------

    def _check(self) -> str:
        s = self.settings
        s.mode = "distributed"
        check_distributed_backends(s)
        not_hosted = [n for n in self.replicas if n != GATEWAY and n not in self.services]
        if not_hosted:
            raise ConfigError(f"--replicas names services not hosted here: "
                              f"{', '.join(not_hosted)}")
        if s.backends.storage == "sqlite":
            many = [n for n, k in self.replicas.items() if k > 1 and n != GATEWAY]
            if many:
                raise ConfigError(
                    f"replicas of {', '.join(many)} need backends.storage=postgres: a SQLite "
                    "file belongs to one process")
        m = s.mesh
        if m.internal_token is not None or m.internal_token_file is not None:
            self._token_source = "from configuration"
            return internal_token(s)
        if self.services and set(self.services) != set(CATALOG):
            # The other services run elsewhere and cannot know a token made up here: every
            # internal call between them would be refused at run time.
            raise ConfigError("--services hosts only part of the mesh, so the services "
                              "elsewhere need the same internal credential: set "
                              "ZYNK_MESH__INTERNAL_TOKEN or ZYNK_MESH__INTERNAL_TOKEN_FILE")
        self._token_source = "generated for this run"
        return secrets.token_urlsafe(32)

    def _claim_ports(self) -> dict[str, int]:
        """Each hosted target's port: 0 becomes a free port now (tests); every port must be
        free (without SO_REUSEPORT, so another Zynk already listening there is noticed
        instead of silently sharing the port with it) and distinct."""
        s = self.settings
        ports: dict[str, int] = {}
        for target in [*self.services, GATEWAY]:
            port = getattr(s.ports, target)
            ports[target] = port or _free_port(s.host)
        seen: dict[int, str] = {}
        for target, port in ports.items():
            if port in seen:
                raise ConfigError(f"{seen[port]} and {target} are both configured on port "
                                  f"{port}")
            seen[port] = target
            if not _port_free(s.host, port):
                raise ConfigError(f"{s.host}:{port} ({target}) is already in use — another "
                                  "Zynk running?")
        return ports

    def _child_env(self, token: str) -> dict[str, str]:
        """The children's environment: the supervisor's, minus its ZYNK_* variables, plus its
        whole effective configuration, one variable per section (JSON), so that every child
        runs on exactly what was checked here — whatever came from the environment, a
        ZYNK_CONFIG file or the caller — with the credential and the resolved ports."""
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZYNK_")}
        config = s.model_dump(mode="json", exclude={"mesh": {"internal_token_file"}})
        config["mode"] = "distributed"
        config["data_dir"] = str(s.data_dir.resolve())
        config["mesh"]["internal_token"] = token
        for field, value in config.items():
            env[f"ZYNK_{field.upper()}"] = value if isinstance(value, str) else json.dumps(value)
        return env

    # -- starting --------------------------------------------------------------------------

    async def start(self) -> None:
        """Raises ConfigError (nothing started) or StartFailed (everything stopped again)."""
        s = self.settings
        token = self._check()
        ports = self._claim_ports()
        for target, port in ports.items():
            setattr(s.ports, target, port)
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self._env = self._child_env(token)
        self.migrated = await run_migrations(s)
        for target in [*self.services, GATEWAY]:
            n = self.replicas.get(target, 1)
            self.children.extend(Child(target, i, n, ports[target]) for i in range(1, n + 1))
        try:
            for batch in (self._service_children(), self._gateway_children()):
                results = await asyncio.gather(*(self._spawn(c) for c in batch),
                                               return_exceptions=True)
                errors = [r for r in results if isinstance(r, BaseException)]
                for e in errors:
                    if not isinstance(e, StartFailed | OSError):
                        raise e
                if errors:
                    raise StartFailed("; ".join(str(e) for e in errors))
        except BaseException:
            await self.stop()
            raise
        self._keepers = [asyncio.create_task(self._keep(c), name=f"keep-{c.label}")
                         for c in self.children]
        for task in self._keepers:
            task.add_done_callback(self._keeper_done)

    def _keeper_done(self, task: asyncio.Task) -> None:
        if task.cancelled() or task.exception() is None:
            return
        # A bug in the supervisor must not leave a child unwatched without anyone knowing.
        self.failure = f"supervisor error: {task.exception()!r}"
        _say(f"{self.failure}; stopping every process")
        self._done.set()

    def _service_children(self) -> list[Child]:
        return [c for c in self.children if c.target != GATEWAY]

    def _gateway_children(self) -> list[Child]:
        return [c for c in self.children if c.target == GATEWAY]

    async def _spawn(self, child: Child) -> None:
        """Start the child's process and wait until it is serving."""
        timeout = self.settings.mesh.start_timeout_s
        ours, theirs = socket.socketpair()
        try:
            child.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mesh.cli", "serve", child.target,
                "--notify-fd", str(theirs.fileno()),
                env=self._env, stdin=asyncio.subprocess.DEVNULL,
                # Its own session (so its own process group): Ctrl-C in the terminal reaches
                # only the supervisor. (uvloop has no process_group argument.)
                pass_fds=(theirs.fileno(),), start_new_session=True)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        child.started_at = time.monotonic()
        reader, child.lifeline = await asyncio.open_connection(sock=ours)
        ready = asyncio.ensure_future(reader.readline())
        exited = asyncio.ensure_future(child.proc.wait())
        try:
            done, _ = await asyncio.wait({ready, exited}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            exited.cancel()
        if ready in done and ready.result().startswith(b"READY"):
            return
        if not done:
            with contextlib.suppress(ProcessLookupError):
                child.proc.kill()
            await child.proc.wait()
            raise StartFailed(f"{child.label} (pid {child.pid}) was not serving within "
                              f"{timeout:g} s (mesh.start_timeout_s); killed it")
        code = await child.proc.wait()
        raise StartFailed(f"{child.label} (pid {child.pid}) {describe_exit(code)} while "
                          "starting (its error is above)")

    # -- watching --------------------------------------------------------------------------

    async def _keep(self, child: Child) -> None:
        m = self.settings.mesh
        while True:
            assert child.proc is not None
            code = await child.proc.wait()
            child.close_lifeline()
            if self._stopping:
                return
            uptime = time.monotonic() - child.started_at
            _say(f"{child.label} (pid {child.pid}, port {child.port}) {describe_exit(code)} "
                 f"after {uptime:.1f} s")
            if not m.restart:
                self.failure = f"{child.label} {describe_exit(code)}"
                _say("mesh.restart is off: stopping every process")
                self._done.set()
                return
            if uptime >= m.restart_reset_s or child.delay_s == 0:
                child.delay_s = m.restart_backoff_s
            else:
                child.delay_s = min(m.restart_backoff_max_s, child.delay_s * 2)
            child.restarts += 1
            _say(f"restarting {child.label} in {child.delay_s:g} s "
                 f"(restart #{child.restarts})")
            await asyncio.sleep(child.delay_s)
            if self._stopping:
                return
            try:
                await self._spawn(child)
            except (StartFailed, OSError) as e:
                # _spawn leaves no half-started process behind: the loop reports and retries.
                _say(f"restart of {child.label} failed: {e}")
                continue
            _say(f"{child.label} is serving again (pid {child.pid})")

    async def wait(self) -> None:
        """Returns when a child's death must stop the mesh (mesh.restart=false)."""
        await self._done.wait()

    # -- stopping --------------------------------------------------------------------------

    async def stop(self) -> None:
        """Gateways first, then services: SIGTERM, the grace period, then SIGKILL."""
        self._stopping = True
        for task in self._keepers:
            task.cancel()
        await asyncio.gather(*self._keepers, return_exceptions=True)
        self._keepers.clear()
        await self._terminate(self._gateway_children())
        await self._terminate(self._service_children())
        for child in self.children:
            child.close_lifeline()

    async def _terminate(self, children: list[Child]) -> None:
        alive = [c for c in children if c.alive]
        for c in alive:
            with contextlib.suppress(ProcessLookupError):
                c.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        if not alive:
            return
        # The child drains for shutdown_grace_s; give it a little more to close its backends.
        _, late = await asyncio.wait([asyncio.ensure_future(c.proc.wait()) for c in alive],
                                     timeout=self.settings.shutdown_grace_s + 5)
        for c in alive:
            if c.alive:
                _say(f"{c.label} (pid {c.pid}) did not stop in time: killing it")
                with contextlib.suppress(ProcessLookupError):
                    c.proc.kill()  # type: ignore[union-attr]
        for task in late:
            await task

    def kill_all(self) -> None:
        """A second Ctrl-C: no more waiting."""
        self._stopping = True
        for c in self.children:
            if c.alive:
                with contextlib.suppress(ProcessLookupError):
                    c.proc.kill()  # type: ignore[union-attr]

    # -- telling ---------------------------------------------------------------------------

    def banner(self) -> str:
        s = self.settings
        host = f"[{s.host}]" if ":" in s.host else s.host
        gw = self._gateway_children()
        url = f"http://{host}:{gw[0].port}" if gw else ""
        lines = [f"Zynk is up (distributed mode: {len(self.children)} processes)",
                 f"  gateway       {url}   docs: {url}/docs   OpenAPI: {url}/openapi.json"
                 f"   {_pids(gw)}"]
        for name, info in CATALOG.items():
            if name not in self.services:
                lines.append(f"  {name:<13} grpc://{s.address_of(name):<16} {info.full_name}"
                             "  [not hosted here]")
                continue
            procs = [c for c in self.children if c.target == name]
            state = "serving" if is_built(name) else f"UNIMPLEMENTED ({NOT_BUILT})"
            address = f"{host}:{procs[0].port}"
            lines.append(f"  {name:<13} grpc://{address:<16} {info.full_name}  [{state}]"
                         f"  {_pids(procs)}")
        lines.extend(backend_lines(s))
        if self.migrated is not None:
            applied = sum(len(v) for v in self.migrated.values())
            lines.append(f"  migrations    {applied} applied now, every schema up to date")
        lines.append(f"  internal credential {self._token_source} (not shown)")
        m = s.mesh
        lines.append(
            f"  a child that dies is reported here and restarted after {m.restart_backoff_s:g}"
            f" s, doubling up to {m.restart_backoff_max_s:g} s" if m.restart else
            "  a child that dies stops the whole mesh (mesh.restart=false)")
        lines.append("Press Ctrl-C to stop.")
        return "\n".join(lines)


def _pids(children: list[Child]) -> str:
    pids = ",".join(str(c.pid) for c in children)
    return f"pid {pids}" if len(children) == 1 else f"{len(children)} processes, pids {pids}"


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
