"""JwksKeySource: an unknown kid refetches at most once per min_refresh_s (forged kids cannot
hammer auth), but a fetch that failed (auth restarting) is tried again after a second, not
after the whole window."""

from __future__ import annotations

import asyncio
import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.runtime.errors import Unauthenticated
from services.runtime.tokens import JwksKeySource


def jwk(kid: str) -> dict:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "kid": kid,
            "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}


class Auth:
    def __init__(self) -> None:
        self.up = False
        self.fetches = 0

    async def __call__(self):
        self.fetches += 1
        if not self.up:
            raise ConnectionError("auth is restarting")
        return [jwk("k1")]


async def test_a_failed_fetch_is_retried_soon():
    auth = Auth()
    keys = JwksKeySource(auth, min_refresh_s=30, retry_after_failure_s=0.2)
    with pytest.raises(Unauthenticated):
        await keys.get("k1")
    assert await keys.get("k1") is None  # within the failure back-off: no second fetch
    assert auth.fetches == 1
    auth.up = True
    await asyncio.sleep(0.25)
    assert await keys.get("k1") is not None
    assert auth.fetches == 2


async def test_unknown_kids_do_not_hammer_auth():
    auth = Auth()
    auth.up = True
    keys = JwksKeySource(auth, min_refresh_s=30, retry_after_failure_s=0.01)
    assert await keys.get("k1") is not None
    for kid in ("forged-1", "forged-2", "forged-3"):
        assert await keys.get(kid) is None
    await asyncio.sleep(0.05)
    assert await keys.get("forged-4") is None
    assert auth.fetches == 1  # one fetch, then the 30 s window: successes keep it
