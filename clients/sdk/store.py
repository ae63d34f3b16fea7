"""The profile directory and its state file, encrypted at rest under a passphrase.

Layout of a profile directory (mode 0700), one per account/device:

    <home>/<profile>/state.zynk     the encrypted state (mode 0600)
    <home>/<profile>/lock           held (flock) while a process uses the profile

State file format (all integers big-endian):

    magic "ZYNKST" 0x00 0x01 (8) | argon2 time_cost (u32) | memory_kib (u32) | parallelism (u32)
    | salt (16) | key check (16) | write salt (16) | nonce (12) | ciphertext

    master   = argon2id(passphrase, salt, time_cost, memory_kib, parallelism) -> 32 bytes
               (argon2-cffi's low-level hash_secret_raw)
    check    = HMAC-SHA256(master, "zynk-store-check")[:16]   tells a wrong passphrase apart
               from a damaged file
    file key = HKDF-SHA256(master, salt=write salt, info="zynk-store-v1"), fresh per write, so
               the random 96-bit nonce never repeats under one key
    ciphertext = ChaCha20-Poly1305(file key, nonce, UTF-8 JSON of the state,
                                   associated data = every header byte before it)

Writes are atomic: a temporary file in the same directory, fsync, rename over the old file,
fsync of the directory. A crash leaves either the old or the new state, never a mix. The
argon2 parameters are stored in the file and bounded on read, so a tampered header cannot make
opening the profile take unbounded memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hmac
import json
import os
import pathlib
import secrets
import struct
from hashlib import sha256
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from clients.sdk.errors import (
    NotLoggedIn,
    ProfileError,
    ProfileLocked,
    StateCorrupted,
    WrongPassphrase,
)

MAGIC = b"ZYNKST\x00\x01"
STATE_FILE = "state.zynk"
LOCK_FILE = "lock"
_PARAMS = struct.Struct(">III")
_HEADER_LEN = len(MAGIC) + _PARAMS.size + 16 + 16 + 16 + 12
_MAX_FILE_BYTES = 256 * 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class KdfParams:
    """argon2id cost. The default follows RFC 9106's second recommended option."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 4

    def check(self) -> KdfParams:
        if not (1 <= self.time_cost <= 64 and 8 * 1024 <= self.memory_kib <= 4 * 1024 * 1024
                and 1 <= self.parallelism <= 64):
            raise StateCorrupted("the state file asks for unreasonable key-derivation costs")
        return self


def derive_master(passphrase: str, salt: bytes, kdf: KdfParams) -> bytes:
    return hash_secret_raw(passphrase.encode(), salt, time_cost=kdf.time_cost,
                           memory_cost=kdf.memory_kib, parallelism=kdf.parallelism,
                           hash_len=32, type=Type.ID)


def _check_value(master: bytes) -> bytes:
    return hmac.new(master, b"zynk-store-check", sha256).digest()[:16]


def _file_key(master: bytes, write_salt: bytes) -> ChaCha20Poly1305:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=write_salt,
               info=b"zynk-store-v1").derive(master)
    return ChaCha20Poly1305(key)


def atomic_write(path: pathlib.Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class EncryptedState:
    """The unlocked state file: holds the derived master key in memory, never the
    passphrase."""

    def __init__(self, path: pathlib.Path, kdf: KdfParams, salt: bytes, master: bytes) -> None:
        self.path = path
        self._kdf = kdf
        self._salt = salt
        self._master = master

    @classmethod
    def create(cls, path: pathlib.Path, passphrase: str, data: dict[str, Any],
               kdf: KdfParams = KdfParams()) -> EncryptedState:
        if not passphrase:
            raise ProfileError("the passphrase must not be empty")
        salt = secrets.token_bytes(16)
        self = cls(path, kdf.check(), salt, derive_master(passphrase, salt, kdf))
        self.save(data)
        return self

    @classmethod
    def open(cls, path: pathlib.Path, passphrase: str) -> tuple[EncryptedState, dict[str, Any]]:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise NotLoggedIn("no Zynk profile here; run `zynk login` (or `zynk register`) "
                              "first") from None
        if len(raw) < _HEADER_LEN + 16 or raw[:len(MAGIC)] != MAGIC:
            raise StateCorrupted(f"{path} is not a Zynk state file (or is damaged)")
        if len(raw) > _MAX_FILE_BYTES:
            raise StateCorrupted(f"{path} is unreasonably large")
        pos = len(MAGIC)
        kdf = KdfParams(*_PARAMS.unpack_from(raw, pos)).check()
        pos += _PARAMS.size
        salt, check = raw[pos:pos + 16], raw[pos + 16:pos + 32]
        master = derive_master(passphrase, salt, kdf)
        if not hmac.compare_digest(_check_value(master), check):
            raise WrongPassphrase("wrong passphrase for this Zynk profile")
        self = cls(path, kdf, salt, master)
        return self, self._decrypt(raw)

    def _decrypt(self, raw: bytes) -> dict[str, Any]:
        header = raw[:_HEADER_LEN]
        write_salt = header[-28:-12]
        nonce = header[-12:]
        try:
            plain = _file_key(self._master, write_salt).decrypt(nonce, raw[_HEADER_LEN:], header)
        except InvalidTag:
            raise StateCorrupted(f"{self.path} is damaged (it does not authenticate)") from None
        try:
            data = json.loads(plain)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise StateCorrupted(f"{self.path} holds no readable state") from None
        if not isinstance(data, dict):
            raise StateCorrupted(f"{self.path} holds no readable state")
        return data

    def encrypt(self, data: dict[str, Any]) -> bytes:
        write_salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
        header = (MAGIC + _PARAMS.pack(self._kdf.time_cost, self._kdf.memory_kib,
                                       self._kdf.parallelism)
                  + self._salt + _check_value(self._master) + write_salt + nonce)
        plain = json.dumps(data, separators=(",", ":")).encode()
        return header + _file_key(self._master, write_salt).encrypt(nonce, plain, header)

    def save(self, data: dict[str, Any]) -> None:
        atomic_write(self.path, self.encrypt(data))


class ProfileDir:
    """A profile directory, locked for the life of this object (one process at a time)."""

    def __init__(self, home: pathlib.Path, name: str) -> None:
        if not name or "/" in name or name.startswith(".") or len(name) > 64:
            raise ProfileError(f"invalid profile name {name!r}")
        self.path = home / name
        self._lock_fd: int | None = None

    @property
    def state_path(self) -> pathlib.Path:
        return self.path / STATE_FILE

    def exists(self) -> bool:
        return self.state_path.exists()

    def lock(self) -> ProfileDir:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ProfileLocked(f"the profile {self.path} is in use by another zynk process "
                                "(use `zynk chat` to send and receive at once)") from None
        self._lock_fd = fd
        return self

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def remove_state(self) -> None:
        """Forget the profile's state (logout). Keys die with it."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.state_path)
        for leftover in self.path.glob(f".{STATE_FILE}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)
