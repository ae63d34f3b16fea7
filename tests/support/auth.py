"""Test helpers for the auth service: cheap settings and real X3DH key material.

Keys are made with the maintained `x3dh`/`xeddsa` libraries the way the reference client
does: an Ed25519 identity key (IdentityKeyFormat.ED_25519) and `_encode_public_key` returning
the raw 32 bytes, so the signed-prekey signature is an (X)EdDSA signature over exactly the
32 prekey bytes that the server verifies with plain Ed25519."""

from __future__ import annotations

import dataclasses
import pathlib
import time

import x3dh

from services.runtime.config import AuthSettings, Rate, RateLimits, Settings

GENEROUS = Rate(per_second=10_000, burst=10_000)


def auth_test_settings(data_dir: pathlib.Path, **auth_overrides) -> Settings:
    auth = AuthSettings(**{"argon2_time_cost": 1, "argon2_memory_kib": 8 * 1024,
                           "argon2_parallelism": 1, "max_one_time_prekeys": 100,
                           **auth_overrides})
    limits = RateLimits(**{name: GENEROUS for name in RateLimits.model_fields})
    return Settings(data_dir=data_dir, auth=auth, rate_limits=limits)


class ClientX3DHState(x3dh.BaseState):
    """What the reference client uses: public keys encoded as their raw 32 bytes."""

    @staticmethod
    def _encode_public_key(key_format: x3dh.IdentityKeyFormat, pub: bytes) -> bytes:
        return pub


def new_x3dh_state() -> ClientX3DHState:
    return ClientX3DHState.create(x3dh.IdentityKeyFormat.ED_25519, x3dh.HashFunction.SHA_256,
                                  b"zynk-x3dh-v1")


@dataclasses.dataclass
class DeviceKeys:
    state: ClientX3DHState
    identity_key: bytes
    signed_prekey_id: int
    signed_prekey: bytes
    signature: bytes
    one_time_prekeys: dict[int, bytes]  # key id -> public key

    @classmethod
    def generate(cls, n_one_time: int, first_id: int = 1) -> DeviceKeys:
        state = new_x3dh_state()
        state.generate_pre_keys(n_one_time)
        b = state.bundle
        ids = range(first_id, first_id + n_one_time)
        return cls(state, b.identity_key, int(time.time()) % 100_000, b.signed_pre_key,
                   b.signed_pre_key_sig, dict(zip(ids, sorted(b.pre_keys), strict=True)))
