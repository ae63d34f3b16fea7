"""Safety numbers: Signal's numeric fingerprint, so two people can compare identity keys.

Construction (libsignal NumericFingerprintGenerator, version 0, 5200 iterations):

    keys    = the user's identity public keys, sorted bytewise and concatenated
    h       = SHA-512(version as 2 bytes big-endian || keys || stable id)
    repeat 5200 times:  h = SHA-512(h || keys)
    digits  = the first 30 bytes of h as six 5-byte big-endian integers, each mod 100000,
              written as 5 zero-padded digits  -> a 30-digit fingerprint per user
    safety number = the two fingerprints concatenated, the smaller one first (60 digits)

Sorting makes the number the same on both phones. Zynk differs from Signal in two documented
ways: identity keys are raw 32-byte Ed25519 keys (no 0x05 type prefix), and a user has one
identity key per device, so a user's fingerprint covers all their devices' keys (as
libsignal's multi-key `createFor` did) -- a new or removed device changes the number. The
stable id is the user's resource name (`users/{uuid}`), which never changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import sha512

VERSION = 0
ITERATIONS = 5200


def fingerprint(stable_id: str, identity_keys: Iterable[bytes]) -> str:
    keys = b"".join(sorted(identity_keys))
    if not keys:
        raise ValueError("a fingerprint needs at least one identity key")
    h = sha512(VERSION.to_bytes(2, "big") + keys + stable_id.encode()).digest()
    for _ in range(ITERATIONS):
        h = sha512(h + keys).digest()
    return "".join(f"{int.from_bytes(h[i:i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5))


def safety_number(local_id: str, local_keys: Iterable[bytes], remote_id: str,
                  remote_keys: Iterable[bytes]) -> str:
    a, b = fingerprint(local_id, local_keys), fingerprint(remote_id, remote_keys)
    return a + b if a <= b else b + a


def format_safety_number(number: str) -> str:
    """60 digits as three lines of four 5-digit groups, as Signal shows them."""
    groups = [number[i:i + 5] for i in range(0, len(number), 5)]
    return "\n".join(" ".join(groups[i:i + 4]) for i in range(0, len(groups), 4))
