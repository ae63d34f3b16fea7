"""The supervisor's watch over its children, on real processes (gateways only: they need no
backend, so these run in seconds): a death is always reported; it is restarted with a
growing delay, or, with mesh.restart=false, stops the whole mesh."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

from mesh.supervisor import StartFailed, Supervisor
from services.runtime.config import Backends, MeshSettings, Ports, Settings

pytestmark = pytest.mark.timeout(120)

@pytest.fixture(autouse=True)
def _redis(redis_url):
    # The gateway checks tokens for the realtime socket: it needs Redis (revocations).
    global BACKENDS
    BACKENDS = Backends(bus="kafka", kafka_bootstrap="127.0.0.1:1", cache="redis",
                        redis_url=redis_url)


def settings(tmp_path, **mesh) -> Settings:
    return Settings(data_dir=tmp_path, backends=BACKENDS, shutdown_grace_s=1,
                    ports=Ports(**{n: 0 for n in Ports.model_fields}),
                    mesh=MeshSettings(**{"start_timeout_s": 60, **mesh}))


@pytest.fixture
async def supervisor():
    made: list[Supervisor] = []

    async def start(s: Settings, gateways: int = 1) -> Supervisor:
        sup = Supervisor(s, {"gateway": gateways}, services=[])
        made.append(sup)
        await sup.start()
        return sup

    yield start
    for sup in made:
        await sup.stop()


async def test_a_dead_child_is_reported_and_restarted_with_a_growing_delay(
        supervisor, tmp_path, capfd):
    sup = await supervisor(settings(tmp_path, restart_backoff_s=0.2), gateways=2)
    child, other = sup.children
    said = ""
    for n in (1, 2):
        pid = child.pid
        os.kill(pid, signal.SIGKILL)
        async with asyncio.timeout(30):
            while "is serving again" not in said:
                await asyncio.sleep(0.05)
                said += capfd.readouterr().err
        assert f"zynk: gateway#1 (pid {pid}, port {child.port}) was killed by SIGKILL" in said
        assert f"zynk: gateway#1 is serving again (pid {child.pid})" in said
        assert child.restarts == n and child.alive
        said = said.replace("is serving again", "was serving again")
    # It died again soon after its restart: the delay doubled.
    assert "restarting gateway#1 in 0.2 s (restart #1)" in said
    assert "restarting gateway#1 in 0.4 s (restart #2)" in said
    assert other.restarts == 0  # the other replica was left alone
    assert sup.failure is None


async def test_with_restart_off_a_death_stops_the_mesh(supervisor, tmp_path, capfd):
    sup = await supervisor(settings(tmp_path, restart=False), gateways=2)
    victim, other = sup.children
    os.kill(victim.pid, signal.SIGTERM)  # even a clean exit is a death to the mesh
    await asyncio.wait_for(sup.wait(), 30)
    assert sup.failure == "gateway#1 exited with status 0"
    err = capfd.readouterr().err
    assert "zynk: gateway#1 (pid" in err and "exited with status 0" in err
    assert "mesh.restart is off: stopping every process" in err
    await sup.stop()
    assert not other.alive


@pytest.mark.parametrize("child, reason", [
    ("echo 'zynk serve gateway: cannot start: boom' >&2; exit 2",
     "exited with status 2 while starting"),
    ("exec sleep 60", "was not serving within 1 s (mesh.start_timeout_s); killed it"),
])
async def test_a_child_that_cannot_start_stops_everything(tmp_path, capfd, monkeypatch,
                                                          child, reason):
    fake = tmp_path / "python"  # what the supervisor runs as `python -m mesh.cli serve ...`
    fake.write_text(f"#!/bin/sh\n{child}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    sup = Supervisor(settings(tmp_path, start_timeout_s=1), {"gateway": 2}, services=[])
    with pytest.raises(StartFailed) as err:
        await sup.start()
    assert "gateway#1" in str(err.value) and reason in str(err.value)
    assert all(not c.alive for c in sup.children)
    if "boom" in child:
        assert "cannot start: boom" in capfd.readouterr().err  # the child's own words


def test_part_of_the_mesh_needs_the_configured_credential(tmp_path):
    """Services hosted elsewhere cannot know a credential generated here."""
    from pydantic import SecretStr

    from mesh.process import ConfigError

    with pytest.raises(ConfigError, match="ZYNK_MESH__INTERNAL_TOKEN"):
        Supervisor(settings(tmp_path), {}, services=["auth", "messaging"])._check()
    s = settings(tmp_path)
    s.mesh.internal_token = SecretStr("x" * 40)
    Supervisor(s, {}, services=["auth"])._check()  # configured: fine
    Supervisor(settings(tmp_path), {}, services=[])._check()  # gateway only: none needed
