"""The `zynk` command: `zynk up` runs every service and the gateway on this machine;
`zynk migrate` brings the PostgreSQL schemas up to date; the client subcommands (register,
login, send, chat, ...) live in clients/cli.py."""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import signal
import sys

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


def _migrate(settings: Settings, services: list[str]) -> int:
    from services.runtime.errors import ZynkError
    from services.runtime.migrate import migrate_services
    from services.runtime.postgres import database_url_for, redact

    def report(service: str, ids: list[str]) -> None:
        done = f"applied {', '.join(ids)}" if ids else "up to date"
        where = f"schema {service} at {redact(database_url_for(settings, service))}"
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="zynk", description=__doc__)
    client_cli.add_common_options(ap, top=True)
    sub = ap.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run every service and the gateway on this machine")
    up.add_argument("--data-dir", type=pathlib.Path, help="where data lives (.zynk-data)")
    up.add_argument("--host", help="address to listen on (127.0.0.1)")
    up.add_argument("--gateway-port", type=int, help="gateway port (8080)")
    mig = sub.add_parser("migrate", help="apply pending PostgreSQL migrations, one schema "
                         "per service (idempotent; safe to run concurrently)")
    mig.add_argument("services", nargs="*", help="only these services (default: all)")
    mig.add_argument("--database-url", help="PostgreSQL URL (ZYNK_BACKENDS__DATABASE_URL)")
    client_cli.add_commands(sub)
    args = ap.parse_args(argv)
    if args.command not in ("up", "migrate"):
        return client_cli.run(args)

    overrides: dict = {}
    if args.command == "up":
        if args.data_dir:
            overrides["data_dir"] = args.data_dir
        if args.host:
            overrides["host"] = args.host
    settings = Settings(**overrides)
    if args.command == "up" and args.gateway_port is not None:
        settings.ports.gateway = args.gateway_port
    zlog.configure(settings.log_level, settings.log_format)
    if args.command == "migrate":
        if args.database_url:
            settings.backends.database_url = args.database_url
        return _migrate(settings, args.services)
    return asyncio.run(_up(settings))


if __name__ == "__main__":
    sys.exit(main())
