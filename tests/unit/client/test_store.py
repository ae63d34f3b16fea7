"""The encrypted profile store."""

import os
import stat

import pytest

from clients.sdk import store
from clients.sdk.errors import (
    NotLoggedIn,
    ProfileError,
    ProfileLocked,
    StateCorrupted,
    WrongPassphrase,
)
from clients.sdk.store import EncryptedState, KdfParams, ProfileDir

FAST = KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1)
DATA = {"identity": "ab" * 32, "sessions": {"users/u/devices/d": [1, 2, 3]}, "cursor": "c-9"}


def test_round_trip_and_nothing_readable_on_disk(tmp_path):
    path = tmp_path / "state.zynk"
    s = EncryptedState.create(path, "correct passphrase", DATA, FAST)
    raw = path.read_bytes()
    assert raw.startswith(store.MAGIC)
    for needle in (b"identity", b"sessions", b"abab", b"c-9", b"correct passphrase"):
        assert needle not in raw
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    _, data = EncryptedState.open(path, "correct passphrase")
    assert data == DATA
    s.save({**DATA, "cursor": "c-10"})
    assert EncryptedState.open(path, "correct passphrase")[1]["cursor"] == "c-10"
    assert path.read_bytes() != raw  # fresh salt and nonce per write


def test_wrong_passphrase_is_told_apart_from_damage(tmp_path):
    path = tmp_path / "state.zynk"
    EncryptedState.create(path, "right", DATA, FAST)
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        EncryptedState.open(path, "wrong")
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 1  # flip a ciphertext bit
    path.write_bytes(bytes(raw))
    with pytest.raises(StateCorrupted, match="damaged"):
        EncryptedState.open(path, "right")


@pytest.mark.parametrize("mutate", [
    lambda raw: raw[:20],  # truncated
    lambda raw: b"NOTZYNK!" + raw[8:],  # not ours
    lambda raw: raw[:8] + (100).to_bytes(4, "big") + raw[12:],  # absurd time cost
    lambda raw: raw[:12] + (2**31).to_bytes(4, "big") + raw[16:],  # absurd memory
])
def test_damaged_or_hostile_headers(tmp_path, mutate):
    path = tmp_path / "state.zynk"
    EncryptedState.create(path, "pw", DATA, FAST)
    path.write_bytes(mutate(path.read_bytes()))
    with pytest.raises(StateCorrupted):
        EncryptedState.open(path, "pw")


def test_header_is_authenticated(tmp_path):
    path = tmp_path / "state.zynk"
    EncryptedState.create(path, "pw", DATA, FAST)
    raw = bytearray(path.read_bytes())
    raw[-30] ^= 1  # the write salt: the key changes, the tag fails
    path.write_bytes(bytes(raw))
    with pytest.raises(StateCorrupted):
        EncryptedState.open(path, "pw")


def test_crash_during_write_keeps_the_old_state(tmp_path, monkeypatch):
    path = tmp_path / "state.zynk"
    s = EncryptedState.create(path, "pw", DATA, FAST)
    before = path.read_bytes()

    def boom(*_a, **_k):
        raise OSError("disk full")

    for target in ("replace", "fsync"):
        with monkeypatch.context() as m:
            m.setattr(store.os, target, boom)
            with pytest.raises(OSError):
                s.save({"cursor": "new"})
        assert path.read_bytes() == before
        assert EncryptedState.open(path, "pw")[1] == DATA
        assert [p.name for p in tmp_path.iterdir()] == ["state.zynk"]  # no temp left


def test_interrupted_write_leftover_is_ignored_and_cleaned(tmp_path):
    prof = ProfileDir(tmp_path, "p").lock()
    EncryptedState.create(prof.state_path, "pw", DATA, FAST)
    (prof.path / ".state.zynk.123.abcd.tmp").write_bytes(b"half a file")
    assert EncryptedState.open(prof.state_path, "pw")[1] == DATA
    prof.remove_state()
    assert sorted(p.name for p in prof.path.iterdir()) == ["lock"]
    prof.unlock()


def test_missing_profile(tmp_path):
    with pytest.raises(NotLoggedIn):
        EncryptedState.open(tmp_path / "nope" / "state.zynk", "pw")


def test_one_process_per_profile(tmp_path):
    a = ProfileDir(tmp_path, "alice").lock()
    assert stat.S_IMODE(os.stat(a.path).st_mode) == 0o700
    with pytest.raises(ProfileLocked, match="in use"):
        ProfileDir(tmp_path, "alice").lock()
    ProfileDir(tmp_path, "bob").lock().unlock()  # other profiles are independent
    a.unlock()
    ProfileDir(tmp_path, "alice").lock().unlock()


@pytest.mark.parametrize("name", ["", "../x", ".hidden", "a/b", "x" * 65])
def test_profile_names(tmp_path, name):
    with pytest.raises(ProfileError):
        ProfileDir(tmp_path, name)


def test_empty_passphrase_refused(tmp_path):
    with pytest.raises(ProfileError):
        EncryptedState.create(tmp_path / "s", "", DATA, FAST)
