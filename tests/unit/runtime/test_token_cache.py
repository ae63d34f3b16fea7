"""TokenVerifier remembers verified tokens, never past their expiry, never past a revocation."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.runtime.errors import Unauthenticated
from services.runtime.revocations import MemoryRevocationList
from services.runtime.tokens import JwksKeySource, TokenVerifier

KEY = Ed25519PrivateKey.generate()


class CountingKeys(JwksKeySource):
    def __init__(self) -> None:
        super().__init__(self._none)
        self.lookups = 0

    @staticmethod
    async def _none():
        return []

    async def get(self, kid: str):
        self.lookups += 1
        return KEY.public_key()


def token(exp_in: float = 300, device: str | None = None) -> str:
    now = int(time.time())
    claims = {"iss": "zynk", "aud": "zynk-api", "sub": "u1", "sid": device or uuid.uuid4().hex,
              "jti": uuid.uuid4().hex, "iat": now, "exp": now + exp_in}
    return jwt.encode(claims, KEY, algorithm="EdDSA", headers={"typ": "at+jwt", "kid": "k"})


async def test_a_verified_token_is_remembered_but_revocation_still_applies():
    keys, revocations = CountingKeys(), MemoryRevocationList()
    verifier = TokenVerifier(keys, "zynk", "zynk-api", revocations)
    t = token(device="dev-1")
    first = await verifier.verify(t)
    assert await verifier.verify(t) == first
    assert keys.lookups == 1
    await revocations.revoke("dev-1", time.time() + 60)
    with pytest.raises(Unauthenticated) as e:
        await verifier.verify(t)
    assert e.value.reason == "DEVICE_REVOKED"


async def test_a_remembered_token_expires_with_the_token():
    clock = [time.time()]
    keys = CountingKeys()
    verifier = TokenVerifier(keys, "zynk", "zynk-api", MemoryRevocationList(),
                             clock=lambda: clock[0])
    t = token(exp_in=60)
    await verifier.verify(t)
    clock[0] += 30
    await verifier.verify(t)
    assert keys.lookups == 1
    clock[0] += 60  # past exp + leeway by the verifier's clock: verified again from scratch
    await verifier.verify(t)
    assert keys.lookups == 2


async def test_the_cache_is_bounded_and_bad_tokens_are_never_cached():
    keys = CountingKeys()
    verifier = TokenVerifier(keys, "zynk", "zynk-api", MemoryRevocationList(), cache_size=3)
    tokens = [token() for _ in range(5)]
    for t in tokens:
        await verifier.verify(t)
    assert len(verifier._verified) == 3
    bad = tokens[0][:-4] + "AAAA"
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            await verifier.verify(bad)
    assert bad not in verifier._verified
