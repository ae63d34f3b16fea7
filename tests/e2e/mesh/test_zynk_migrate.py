"""`zynk migrate` as an operator runs it: real processes, several at once, on a fresh
database; idempotent, and clear when it cannot do its job."""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import pytest

from mesh.cli import _migrate
from services.runtime.config import Backends, PostgresSettings, Settings
from services.runtime.migrate import migratable_services, migrate_on_start
from tests.support.postgres import temporary_database

pytestmark = pytest.mark.timeout(90)


async def zynk(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ZYNK_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mesh.cli", *args, env={**clean, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


def lines_for(output: str, service: str) -> list[str]:
    return [line for line in output.splitlines() if line.split()[:1] == [service]]


@pytest.fixture
def fresh_url(postgres_url):  # postgres_url: skip/fail loudly without a server
    with temporary_database() as url:
        yield url


async def test_concurrent_runs_apply_each_migration_once(fresh_url):
    assert "auth" in migratable_services()
    # Two operators (or two deploy jobs) at once; one takes the URL from the environment.
    runs = await asyncio.gather(zynk("migrate", "--database-url", fresh_url),
                                zynk("migrate", env={"ZYNK_BACKENDS__DATABASE_URL": fresh_url}))
    assert [code for code, _, _ in runs] == [0, 0], [err for _, _, err in runs]
    auth_lines = [line for _, out, _ in runs for line in lines_for(out, "auth")]
    applied = [line for line in auth_lines if "applied" in line]
    assert len(applied) == 1 and "runtime_0001_outbox, auth_0001_init" in applied[0]
    assert sum("up to date" in line for line in auth_lines) == 1
    assert "(schema auth at postgresql://" in applied[0]


async def test_the_runner_hook_migrates_every_service(fresh_url):
    settings = Settings(backends=Backends(database_url=fresh_url), postgres=PostgresSettings())
    applied = await migrate_on_start(settings)
    assert set(applied) == set(migratable_services())
    assert applied["auth"] == ["runtime_0001_outbox", "auth_0001_init"]
    assert await migrate_on_start(settings) == {s: [] for s in migratable_services()}


def test_clear_errors(postgres_url, capsys):
    def run(url: str, *services: str) -> tuple[int, str]:
        settings = Settings(backends=Backends(database_url=url), postgres=PostgresSettings())
        code = _migrate(settings, list(services))
        return code, capsys.readouterr().err

    code, err = run(postgres_url, "nosuch")
    assert code == 1 and "no PostgreSQL migrations for: nosuch" in err
    code, err = run("")
    assert code == 1 and "set ZYNK_BACKENDS__DATABASE_URL" in err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, err = run(f"postgresql://u:hunter2@127.0.0.1:{port}/zynk")
    assert code == 1 and "cannot reach PostgreSQL" in err and "hunter2" not in err
