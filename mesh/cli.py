"""The `zynk` command.

  zynk up                       every service and the gateway in this process (embedded)
  zynk up --distributed         every service in its own process, plus the gateway, supervised
  zynk serve <service>|gateway  one service (or the gateway) in this process (distributed)
  zynk migrate                  bring the PostgreSQL schemas up to date
The client subcommands (register, login, send, chat, ...) live in clients/cli.py."""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import signal
import sys

from pydantic import ValidationError

from clients import cli as client_cli
from services.runtime import logging as zlog
from services.runtime.config import Settings


async def _up(settings: Settings) -> int:
    from mesh.embedded import EmbeddedMesh

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    mesh = EmbeddedMesh(settings)
    try:
        await mesh.start()
    except OSError as e:
        print(f"zynk: cannot start: {e}", file=sys.stderr)
        return 1
    print(mesh.banner(), flush=True)
    await stop.wait()
    print("zynk: stopping (draining in-flight calls)...", flush=True)
    await mesh.stop()
    print("zynk: stopped", flush=True)
    return 0


async def _up_distributed(settings: Settings, replicas: str | None,
                          services: str | None) -> int:
    from mesh.process import ConfigError
    from mesh.supervisor import StartFailed, Supervisor, parse_replicas, parse_services

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        sup = Supervisor(settings, parse_replicas(replicas), parse_services(services))
    except ConfigError as e:
        print(f"zynk: {e}", file=sys.stderr)
        return 2

    def on_signal() -> None:
        if stop.is_set():
            print("zynk: second interrupt: killing every process now", file=sys.stderr,
                  flush=True)
            sup.kill_all()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    starting = asyncio.ensure_future(sup.start())
    interrupted = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, interrupted}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():  # Ctrl-C while starting: stop what is up
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await sup.stop()
        print("zynk: stopped", flush=True)
        return 130
    interrupted.cancel()
    try:
        starting.result()
    except ConfigError as e:
        print(f"zynk: {e}", file=sys.stderr)
        return 2
    except StartFailed as e:
        print(f"zynk: cannot start: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 -- e.g. migrations failing: say what, exit 1
        print(f"zynk: cannot start: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(sup.banner(), flush=True)
    failed = asyncio.ensure_future(sup.wait())
    interrupted = asyncio.ensure_future(stop.wait())
    await asyncio.wait({failed, interrupted}, return_when=asyncio.FIRST_COMPLETED)
    failed.cancel()
    interrupted.cancel()
    print("zynk: stopping every process (gateways first, in-flight calls drain)...",
          flush=True)
    await sup.stop()
    print("zynk: stopped", flush=True)
    return 1 if sup.failure else 0


def _migrate(settings: Settings, services: list[str]) -> int:
    from services.runtime.errors import ZynkError
    from services.runtime.migrate import migrate_services
    from services.runtime.postgres import database_url_for
    from services.runtime.urls import redact_url

    def report(service: str, ids: list[str]) -> None:
        done = f"applied {', '.join(ids)}" if ids else "up to date"
        where = f"schema {service} at {redact_url(database_url_for(settings, service))}"
        print(f"{service:<13} {done}  ({where})", flush=True)

    try:
        migrate_services(settings, services, on_done=report)
    except (ValueError, ZynkError) as e:
        print(f"zynk migrate: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a migration's SQL failed: it rolled back, nothing half-done
        print(f"zynk migrate: failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


def _run(settings: Settings, main_coroutine) -> int:
    """Run a process's main coroutine on the configured event loop."""
    factory = None
    if settings.event_loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main_coroutine)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="zynk", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    client_cli.add_common_options(ap, top=True)
    sub = ap.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run every service and the gateway on this machine")
    up.add_argument("--data-dir", type=pathlib.Path, help="where data lives (.zynk-data)")
    up.add_argument("--host", help="address to listen on (127.0.0.1)")
    up.add_argument("--gateway-port", type=int, help="gateway port (8080)")
    up.add_argument("--distributed", action="store_true",
                    help="one OS process per service (and per gateway replica), on the "
                         "backends Settings choose (PostgreSQL or SQLite, Redis, Kafka)")
    up.add_argument("--replicas", metavar="NAME=N,...",
                    help="with --distributed: N processes of a kind sharing its port, "
                         "e.g. gateway=2,messaging=2")
    up.add_argument("--services", metavar="NAME,...",
                    help="with --distributed: host only these services here (the others "
                         "run elsewhere, reached at Settings.addresses)")
    serve = sub.add_parser("serve", help="run one service, or the gateway, in this process "
                                         "(distributed mode)")
    serve.add_argument("target", help="a service name (auth, messaging, ...) or gateway")
    serve.add_argument("--data-dir", type=pathlib.Path, help="where data lives (.zynk-data)")
    serve.add_argument("--host", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (the target's in ports)")
    serve.add_argument("--notify-fd", type=int, help=argparse.SUPPRESS)
    mig = sub.add_parser("migrate", help="apply pending PostgreSQL migrations, one schema "
                         "per service (idempotent; safe to run concurrently)")
    mig.add_argument("services", nargs="*", help="only these services (default: all)")
    mig.add_argument("--database-url", help="PostgreSQL URL (ZYNK_BACKENDS__DATABASE_URL)")
    client_cli.add_commands(sub)
    args = ap.parse_args(argv)
    if args.command not in ("up", "serve", "migrate"):
        return client_cli.run(args)

    overrides: dict = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    if getattr(args, "host", None):
        overrides["host"] = args.host
    try:
        settings = Settings(**overrides)
    except ValidationError as e:
        print(f"zynk: invalid configuration: {e}", file=sys.stderr)
        return 2
    if args.command == "up":
        if args.gateway_port is not None:
            settings.ports.gateway = args.gateway_port
        distributed = args.distributed or settings.mode == "distributed"
        if not distributed and (args.replicas or args.services):
            ap.error("--replicas and --services need --distributed")
        zlog.configure(settings.log_level, settings.log_format,
                       fields={"process": "supervisor"} if distributed else None)
        if distributed:
            return _run(settings, _up_distributed(settings, args.replicas, args.services))
        return _run(settings, _up(settings))

    if args.command == "migrate":
        zlog.configure(settings.log_level, settings.log_format)
        if args.database_url:
            settings.backends.database_url = args.database_url
        return _migrate(settings, args.services)

    from mesh.serve import run

    if args.port is not None and hasattr(settings.ports, args.target):
        setattr(settings.ports, args.target, args.port)
    zlog.configure(settings.log_level, settings.log_format,
                   fields={"process": args.target, "pid": os.getpid()})
    return _run(settings, run(settings, args.target, args.notify_fd))


if __name__ == "__main__":
    sys.exit(main())
