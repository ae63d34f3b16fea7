"""The shared pieces of every process (mesh/process.py): the internal credential, which
backends a distributed process accepts, what the banners say, sockets shared by replicas."""

from __future__ import annotations

import socket

import pytest
from pydantic import SecretStr

from mesh.process import (
    ConfigError,
    backend_lines,
    check_distributed_backends,
    internal_token,
    redact_url,
    reuseport_socket,
    service_addresses,
)
from services.runtime.config import Backends, MeshSettings, Settings

TOKEN = "k" * 43

DISTRIBUTED = Backends(bus="kafka", kafka_bootstrap="127.0.0.1:9092", cache="redis",
                       redis_url="redis://127.0.0.1:6379/0")


def settings_with(**mesh) -> Settings:
    return Settings(mesh=MeshSettings(**mesh))


def test_no_internal_credential_means_no_start():
    with pytest.raises(ConfigError, match="ZYNK_MESH__INTERNAL_TOKEN"):
        internal_token(Settings())


def test_a_short_internal_credential_is_refused():
    with pytest.raises(ConfigError, match="too short"):
        internal_token(settings_with(internal_token=SecretStr("password123")))


def test_the_internal_credential_from_the_environment(monkeypatch):
    monkeypatch.setenv("ZYNK_MESH__INTERNAL_TOKEN", f"  {TOKEN}\n")
    assert internal_token(Settings()) == TOKEN
    assert TOKEN not in repr(Settings().mesh)  # a secret: never in a repr or a log line


def test_the_internal_credential_from_a_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    assert internal_token(settings_with(internal_token_file=path)) == TOKEN
    with pytest.raises(ConfigError, match="cannot read"):
        internal_token(settings_with(internal_token_file=tmp_path / "missing"))
    # The supervisor hands its children the value; it wins over a file in a config file.
    other = "o" * 40
    assert internal_token(settings_with(internal_token=SecretStr(other),
                                        internal_token_file=path)) == other


def test_distributed_processes_refuse_backends_they_cannot_share():
    with pytest.raises(ConfigError) as err:
        check_distributed_backends(Settings())
    assert "backends.bus must be kafka" in str(err.value)
    assert "backends.cache must be redis" in str(err.value)
    check_distributed_backends(Settings(backends=DISTRIBUTED))


def test_postgres_storage_needs_the_postgres_module(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "services.runtime.postgres"
                        else real(name, *a))
    b = DISTRIBUTED.model_copy(update={"storage": "postgres"})
    with pytest.raises(ConfigError, match="no PostgreSQL storage"):
        check_distributed_backends(Settings(backends=b))


def test_urls_lose_their_password_in_banners():
    assert redact_url("redis://:s3cret@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redact_url("postgresql://zynk:s3cret@db/zynk") == "postgresql://zynk:***@db/zynk"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_the_banner_names_the_backends_actually_in_use(tmp_path):
    embedded = "\n".join(backend_lines(Settings(data_dir=tmp_path)))
    assert "SQLite" in embedded and "in-process" in embedded
    assert "Redis" not in embedded and "Kafka" not in embedded
    b = DISTRIBUTED.model_copy(update={"redis_url": "redis://:pw@10.0.0.5:6379/0"})
    distributed = "\n".join(backend_lines(Settings(data_dir=tmp_path, backends=b)))
    assert "Kafka 127.0.0.1:9092" in distributed
    assert "Redis redis://:***@10.0.0.5:6379/0" in distributed
    assert "pw" not in distributed
    assert "in-process" not in distributed


def test_addresses_come_from_settings():
    s = Settings(addresses={"auth": "auth.zynk.svc:8001"})
    s.ports.group = 9105
    addresses = service_addresses(s)
    assert addresses["zynk.auth.v1.AuthService"] == "auth.zynk.svc:8001"
    assert addresses["zynk.group.v1.GroupService"] == "127.0.0.1:9105"
    assert len(addresses) == 12


def test_replicas_share_a_port_and_strangers_cannot_take_it():
    first = reuseport_socket("127.0.0.1", 0)
    port = first.getsockname()[1]
    second = reuseport_socket("127.0.0.1", port)
    try:
        assert second.getsockname()[1] == port
        with socket.socket() as plain, pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))  # without SO_REUSEPORT: refused
    finally:
        first.close()
        second.close()


def test_redact_url_masks_a_password_in_the_query_too():
    shown = redact_url("postgresql://zynk:pw@db/zynk?password=pw2&sslmode=require")
    assert "pw" not in shown.replace("postgresql", "")
    assert shown == "postgresql://zynk:***@db/zynk?password=***&sslmode=require"
    assert redact_url("postgresql://u:p@[::1]:5432/z") == "postgresql://u:***@[::1]:5432/z"
