"""The `zynk` client subcommands against the real mesh (auth through the gateway)."""

import asyncio
import os
import re
import subprocess
import sys

import pytest

from clients import cli
from tests.e2e.client.conftest import PASSWORD, unique

pytestmark = pytest.mark.timeout(60)
# The mesh runs in this process and logs to the same stdout: keep only the CLI's lines.
_SERVER_LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[.*\n?", re.M)


@pytest.fixture
def zynk(server, tmp_path, capsys):
    """Run `zynk ...` in-process (a worker thread: it runs its own event loop)."""
    env = {"ZYNK_SERVER": server, "ZYNK_HOME": str(tmp_path), "ZYNK_PASSWORD": PASSWORD,
           "ZYNK_PASSPHRASE": "cli passphrase"}

    async def run(*argv: str, **extra_env: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = await asyncio.to_thread(cli.main, list(argv), {**env, **extra_env})
        out, err = (_SERVER_LOG.sub("", t) for t in capsys.readouterr())
        assert "Traceback" not in out + err
        return rc, out, err

    return run


async def test_register_whoami_devices_and_logout(zynk):
    alice = unique("alice")
    rc, out, _ = await zynk("register", alice, "--kdf-memory-mib", "8")
    assert rc == 0 and f"registered {alice}" in out and "logged in" in out
    rc, out, _ = await zynk("whoami")
    assert rc == 0 and alice in out and "one-time prekeys on the server: 100" in out
    rc, out, _ = await zynk("devices")
    assert rc == 0 and out.startswith("* ") and "keys" in out
    device_id = out.split()[1]
    rc, out, _ = await zynk("devices", "rename", device_id[:8], "laptop")
    assert rc == 0 and "'laptop'" in out
    rc, out, _ = await zynk("logout")
    assert rc == 0
    rc, _, err = await zynk("whoami")
    assert rc == 3 and err.startswith("zynk: no login") and err.count("\n") == 1


async def test_two_profiles_compare_safety_numbers(zynk):
    alice, bob = unique("alice"), unique("bob")
    for name in (alice, bob):
        rc, _, _ = await zynk("--profile", name, "register", name, "--kdf-memory-mib", "8")
        assert rc == 0
    rc, a_out, _ = await zynk("--profile", alice, "safety-number", bob)
    rc2, b_out, _ = await zynk("safety-number", alice, "--profile", bob)
    assert rc == rc2 == 0
    a_digits = "".join(a_out.splitlines()[1:]).replace(" ", "")
    assert len(a_digits) == 60 and a_digits == "".join(b_out.splitlines()[1:]).replace(" ", "")


async def test_expected_failures_are_one_line_with_exit_codes(zynk):
    name = unique("carol")
    assert (await zynk("register", name, "--kdf-memory-mib", "8"))[0] == 0
    rc, _, err = await zynk("whoami", ZYNK_PASSPHRASE="wrong")
    assert rc == 3 and err == "zynk: wrong passphrase for this Zynk profile\n"
    rc, _, err = await zynk("--profile", "other", "login", name, ZYNK_PASSWORD="nope nope nope")
    assert rc == 3 and err == "zynk: invalid username or password\n"
    rc, _, err = await zynk("--profile", "other", "login", name,
                            ZYNK_SERVER="http://127.0.0.1:9")
    assert rc == 4 and "cannot reach the Zynk server at http://127.0.0.1:9" in err
    rc, _, err = await zynk("register", "x")
    assert rc == 2 and "username" in err and err.count("\n") == 1
    rc, _, err = await zynk("send", unique("nobody"), "hello")
    assert rc == 1 and "no user named" in err
    other = unique("dave")
    rc, _, err = await zynk("--profile", other, "register", other, "--kdf-memory-mib", "2")
    assert rc == 2 and "--kdf-memory-mib" in err
    rc, _, err = await zynk("--profile", other, "login", other)  # nothing was created
    assert rc == 3 and "invalid username or password" in err


def test_console_script_has_client_commands_beside_up(tmp_path, capsys):
    """The `zynk` entry point (mesh/cli.py) runs the client subcommands beside `up`."""
    from mesh import cli as mesh_cli

    with pytest.raises(SystemExit) as exit_:
        mesh_cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("up", "register", "login", "send", "chat", "listen", "groups",
                    "safety-number", "devices", "whoami", "logout"):
        assert command in out
    env = {**os.environ, "ZYNK_HOME": str(tmp_path), "ZYNK_PASSPHRASE": "x"}
    run = subprocess.run([sys.executable, "-m", "mesh.cli", "whoami"], capture_output=True,
                         text=True, env=env, timeout=30)
    assert run.returncode == 3 and run.stderr.startswith("zynk: no login")
    assert "Traceback" not in run.stderr
