"""Access-token verification, done locally by every service.

Tokens are JWTs signed with Ed25519 (alg EdDSA, header typ `at+jwt` per RFC 9068). The
verifier allows only EdDSA, requires iss, aud, exp, iat, sub, sid and jti, checks them,
looks the key up by kid in the auth service's published JWKS, and refuses tokens of
revoked devices. Issuing lives in the auth service; only verifying is shared.

A token that verified once is remembered (bounded, until its exp + leeway): decoding and
checking an EdDSA JWT costs more than the rest of a typical call, and a client presents the
same token on every call until it renews it. The revocation list is still consulted on every
call. Consequence: a token whose signing key is withdrawn from the JWKS stays accepted by a
verifier that already saw it until it expires (access tokens live minutes)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Iterable

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.runtime.context import Principal
from services.runtime.errors import Unauthenticated
from services.runtime.revocations import RevocationList

ALGORITHMS = ["EdDSA"]
ACCESS_TOKEN_TYPE = "at+jwt"
LEEWAY_S = 5


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def public_key_from_jwk(jwk: dict) -> Ed25519PublicKey:
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise ValueError("only OKP/Ed25519 keys are accepted")
    return Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))


JwksFetcher = Callable[[], Awaitable[Iterable[dict]]]


class JwksKeySource:
    """Public keys by kid, fetched from the auth service and cached; an unknown kid triggers
    at most one refetch per `min_refresh_s` so forged kids cannot hammer the auth service."""

    def __init__(self, fetch: JwksFetcher, min_refresh_s: float = 30.0,
                 retry_after_failure_s: float = 1.0) -> None:
        self._fetch = fetch
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._last_fetch = float("-inf")
        self._min_refresh_s = min_refresh_s
        # A failed fetch (auth restarting, a replica started before auth) is retried sooner:
        # waiting out min_refresh_s would refuse every token for that long.
        self._retry_after_failure_s = min(retry_after_failure_s, min_refresh_s)
        self._lock = asyncio.Lock()

    def set_keys(self, jwks: Iterable[dict]) -> None:
        self._keys = {k["kid"]: public_key_from_jwk(k) for k in jwks}

    async def get(self, kid: str) -> Ed25519PublicKey | None:
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            if kid not in self._keys and time.monotonic() - self._last_fetch >= self._min_refresh_s:
                self._last_fetch = time.monotonic()
                try:
                    self.set_keys(await self._fetch())
                except Exception as e:  # auth unreachable: refuse rather than guess
                    self._last_fetch += self._retry_after_failure_s - self._min_refresh_s
                    raise Unauthenticated("cannot verify tokens right now",
                                          reason="KEYS_UNAVAILABLE") from e
        return self._keys.get(kid)


class TokenVerifier:
    def __init__(self, keys: JwksKeySource, issuer: str, audience: str,
                 revocations: RevocationList, *, cache_size: int = 10_000,
                 clock: Callable[[], float] = time.time) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._revocations = revocations
        self._verified: dict[str, tuple[float, Principal]] = {}
        self._cache_size = cache_size
        self._clock = clock

    async def verify(self, token: str) -> Principal:
        hit = self._verified.get(token)
        if hit is not None and hit[0] > self._clock():
            who = hit[1]
        else:
            who, exp = await self._decode(token)
            if self._cache_size:
                if hit is not None:
                    del self._verified[token]
                while len(self._verified) >= self._cache_size:
                    del self._verified[next(iter(self._verified))]  # the oldest
                self._verified[token] = (exp + LEEWAY_S, who)
        if await self._revocations.is_revoked(who.device_id):
            raise Unauthenticated("this device has been revoked", reason="DEVICE_REVOKED")
        return who

    async def _decode(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise Unauthenticated("malformed access token", reason="TOKEN_MALFORMED") from e
        if header.get("alg") not in ALGORITHMS:
            raise Unauthenticated("token algorithm not allowed", reason="TOKEN_ALGORITHM")
        if header.get("typ") != ACCESS_TOKEN_TYPE:
            raise Unauthenticated("not an access token", reason="TOKEN_TYPE")
        key = await self._keys.get(str(header.get("kid", "")))
        if key is None:
            raise Unauthenticated("token signed by an unknown key", reason="TOKEN_KEY_UNKNOWN")
        try:
            claims = jwt.decode(
                token, key, algorithms=ALGORITHMS, audience=self._audience,
                issuer=self._issuer, leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "sid", "jti"]},
            )
        except jwt.ExpiredSignatureError as e:
            raise Unauthenticated("access token expired", reason="TOKEN_EXPIRED") from e
        except jwt.PyJWTError as e:
            raise Unauthenticated("invalid access token", reason="TOKEN_INVALID") from e
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthenticated("invalid access token", reason="TOKEN_INVALID")
        try:
            exp = float(claims["exp"])
        except (TypeError, ValueError):
            raise Unauthenticated("invalid access token", reason="TOKEN_INVALID") from None
        return Principal(user_id=str(claims["sub"]), device_id=str(claims["sid"]),
                         token_id=str(claims["jti"]), roles=frozenset(roles)), exp
