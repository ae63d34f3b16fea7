"""The supervisor's checks before it starts anything (mesh/supervisor.py)."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from mesh.process import ConfigError
from mesh.supervisor import (
    Supervisor,
    describe_exit,
    parse_replicas,
    parse_services,
    run_migrations,
)
from services.runtime.catalog import CATALOG
from services.runtime.config import Backends, Ports, Settings

DISTRIBUTED = Backends(bus="kafka", kafka_bootstrap="127.0.0.1:9092", cache="redis",
                       redis_url="redis://127.0.0.1:6379/0")


def test_replicas_parse():
    assert parse_replicas("gateway=2, messaging=3") == {"gateway": 2, "messaging": 3}
    assert parse_replicas(None) == {}
    for bad in ["gateway", "nope=2", "gateway=two", "gateway=0", "gateway=65"]:
        with pytest.raises(ConfigError):
            parse_replicas(bad)


def test_services_parse_in_catalogue_order():
    assert parse_services("group,auth") == ["auth", "group"]
    assert parse_services(None) == list(CATALOG)
    with pytest.raises(ConfigError, match="nope"):
        parse_services("auth,nope")


def test_exits_are_described_for_humans():
    assert describe_exit(-9) == "was killed by SIGKILL"
    assert describe_exit(3) == "exited with status 3"


async def test_sqlite_services_cannot_have_replicas(tmp_path):
    sup = Supervisor(Settings(data_dir=tmp_path, backends=DISTRIBUTED), {"auth": 2})
    with pytest.raises(ConfigError, match="postgres"):
        await sup.start()
    assert sup.children == []


async def test_memory_backends_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="kafka"):
        await Supervisor(Settings(data_dir=tmp_path)).start()


async def test_a_port_in_use_is_noticed_before_anything_starts(tmp_path):
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ports = Ports(**{n: 0 for n in Ports.model_fields})
        ports.auth = busy.getsockname()[1]
        sup = Supervisor(Settings(data_dir=tmp_path, backends=DISTRIBUTED, ports=ports))
        with pytest.raises(ConfigError, match="already in use"):
            await sup.start()
        assert sup.children == []


async def test_two_services_on_one_port_are_refused(tmp_path):
    ports = Ports(**{n: 0 for n in Ports.model_fields})
    ports.auth = ports.group = 18999
    sup = Supervisor(Settings(data_dir=tmp_path, backends=DISTRIBUTED, ports=ports))
    with pytest.raises(ConfigError, match="auth and group"):
        await sup.start()


def fake_module(monkeypatch, name: str, **attrs) -> None:
    import importlib.machinery
    import types

    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    for k, v in attrs.items():
        setattr(module, k, v)
    monkeypatch.setitem(sys.modules, name, module)


async def test_migrations_run_once_on_postgres_and_never_on_sqlite(monkeypatch, tmp_path):
    calls = []

    async def migrate_on_start(settings):
        calls.append(settings)
        return {"auth": ["auth_0001_init"]}

    fake_module(monkeypatch, "services.runtime.migrate", migrate_on_start=migrate_on_start)
    assert await run_migrations(Settings(data_dir=tmp_path)) is None
    assert calls == []
    pg = Settings(data_dir=tmp_path, backends=DISTRIBUTED.model_copy(
        update={"storage": "postgres", "database_url": "postgresql://db/zynk"}))
    assert await run_migrations(pg) == {"auth": ["auth_0001_init"]}
    assert calls == [pg]


async def test_a_failed_migration_stops_the_start_before_any_process(monkeypatch, tmp_path):
    async def migrate_on_start(settings):
        raise RuntimeError("migration auth_0002 failed")

    fake_module(monkeypatch, "services.runtime.postgres")
    fake_module(monkeypatch, "services.runtime.migrate", migrate_on_start=migrate_on_start)
    ports = Ports(**{n: 0 for n in Ports.model_fields})
    sup = Supervisor(Settings(data_dir=tmp_path, ports=ports, backends=DISTRIBUTED.model_copy(
        update={"storage": "postgres", "database_url": "postgresql://db/zynk"})))
    with pytest.raises(RuntimeError, match="auth_0002"):
        await sup.start()
    assert sup.children == []


def test_children_get_exactly_the_supervisors_configuration(monkeypatch, tmp_path):
    from pydantic import SecretStr

    from services.runtime.config import MeshSettings, Rate

    monkeypatch.setenv("ZYNK_LOG_LEVEL", "DEBUG")  # the supervisor's env ...
    s = Settings(data_dir=tmp_path / "d", backends=DISTRIBUTED, addresses={"auth": "a:1"},
                 mesh=MeshSettings(internal_token_file=tmp_path / "t", probe_interval_s=0.5))
    s.rate_limits.login_per_account = Rate(per_second=3, burst=7)
    s.ports.gateway = 9999
    env = Supervisor(s)._child_env("c" * 40)
    # ... is not passed on piecemeal: the child sees one consistent configuration.
    assert not any(k.startswith("ZYNK_") and "__" in k for k in env)
    for key in [k for k in os.environ if k.startswith("ZYNK_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("ZYNK_"):
            monkeypatch.setenv(key, value)
    child = Settings()
    assert child.mode == "distributed"
    assert child.data_dir == (tmp_path / "d").resolve()
    assert child.mesh.internal_token == SecretStr("c" * 40)
    assert child.mesh.internal_token_file is None
    expected = s.model_dump(exclude={"mode", "data_dir", "mesh"})
    assert child.model_dump(exclude={"mode", "data_dir", "mesh"}) == expected
    assert child.mesh.probe_interval_s == 0.5
    assert child.log_level == "DEBUG"
