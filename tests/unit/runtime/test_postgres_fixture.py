"""The PostgreSQL test fixture's promise: without a server, CI fails loudly and a developer
machine skips with the reason; with one, each run gets its own database, dropped after."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys

import psycopg
import pytest

from tests.support.postgres import temporary_database

ROOT = pathlib.Path(__file__).resolve().parents[3]

NEEDS_POSTGRES = '''
def test_needs_postgres(postgres_url):
    pass
'''


def run_pytest(tmp_path: pathlib.Path, **env: str) -> subprocess.CompletedProcess:
    test = tmp_path / "test_needs_postgres.py"
    test.write_text(NEEDS_POSTGRES)
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "tests.support.postgres",
         "-p", "no:cacheprovider", str(test)],
        cwd=ROOT, env={**base, "PYTHONPATH": str(ROOT), **env}, capture_output=True,
        text=True, timeout=60)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"postgresql://postgres@127.0.0.1:{s.getsockname()[1]}/postgres"


@pytest.mark.timeout(90)
def test_no_server_fails_the_run_in_ci(tmp_path):
    ci = run_pytest(tmp_path, CI="true", ZYNK_TEST_POSTGRES_URL=closed_port_url())
    assert ci.returncode != 0, ci.stdout
    assert "CI=true and PostgreSQL is not reachable" in ci.stdout


def test_no_server_skips_with_the_reason_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("ZYNK_TEST_POSTGRES_URL", closed_port_url())
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL is not reachable"):
        with temporary_database():
            pass
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true and PostgreSQL"):
        with temporary_database():
            pass


def test_a_temporary_database_is_its_own_and_gone_afterwards(postgres_url):
    with temporary_database() as url:
        name = url.rsplit("/", 1)[1]
        assert name.startswith("zynk_test_") and url != postgres_url
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == name
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s",
                            (name,)).fetchone()[0] == 0
