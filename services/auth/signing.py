"""Token issuing: the Ed25519 signing key, its JWK (kid = RFC 7638 thumbprint), access
tokens in exactly the form `services.runtime.tokens.TokenVerifier` accepts, and opaque
refresh tokens.

Access token: JWT, header {"alg": "EdDSA", "typ": "at+jwt", "kid": <thumbprint>}, claims
iss, aud, sub (user id), sid (device id), jti (random), iat, exp = iat + access_ttl_s.

Refresh token: "zrt_" + base64url(32 random bytes) (256 bits). Only its SHA-256 is stored.
The prefix makes leaked tokens easy for secret scanners to spot and keeps them from ever
parsing as a JWT."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import pathlib
import secrets
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.runtime import logging as zlog
from services.runtime.config import AuthSettings
from services.runtime.tokens import ACCESS_TOKEN_TYPE

log = zlog.get("auth.signing")

REFRESH_TOKEN_PREFIX = "zrt_"
REFRESH_TOKEN_BYTES = 32


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def load_or_create_signing_key(path: pathlib.Path) -> Ed25519PrivateKey:
    """Load the PEM (PKCS#8) Ed25519 key at `path`, creating it with mode 0600 (directory
    0700) if it does not exist. Creation is O_EXCL, so two processes starting at once end up
    with the same key."""
    path = pathlib.Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process won the race: load theirs below
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
            log.info("created token signing key", path=str(path))
            return key
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("token signing key is readable by others; chmod 600 it",
                    path=str(path), mode=oct(mode))
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    """The OKP JWK of an Ed25519 public key (RFC 8037), kid = RFC 7638 thumbprint."""
    x = b64url(public_key.public_bytes(serialization.Encoding.Raw,
                                       serialization.PublicFormat.Raw))
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": jwk_thumbprint("Ed25519", x),
            "alg": "EdDSA", "use": "sig"}


def jwk_thumbprint(crv: str, x: str) -> str:
    """RFC 7638 §3: SHA-256 over the required members in lexicographic order, no spaces."""
    canonical = json.dumps({"crv": crv, "kty": "OKP", "x": x}, separators=(",", ":"),
                           sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


@dataclasses.dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    token_id: str
    expire_time: float


class TokenIssuer:
    def __init__(self, key: Ed25519PrivateKey, settings: AuthSettings) -> None:
        self._key = key
        self._jwk = public_jwk(key.public_key())
        self._issuer = settings.issuer
        self._audience = settings.audience
        self._ttl = settings.access_ttl_s

    @property
    def kid(self) -> str:
        return self._jwk["kid"]

    def jwks(self) -> list[dict[str, str]]:
        return [dict(self._jwk)]

    def access_token(self, user_id: str, device_id: str, now: float) -> AccessToken:
        iat = int(now)
        exp = iat + self._ttl
        jti = uuid.uuid4().hex
        claims = {"iss": self._issuer, "aud": self._audience, "sub": user_id, "sid": device_id,
                  "jti": jti, "iat": iat, "exp": exp}
        token = jwt.encode(claims, self._key, algorithm="EdDSA",
                           headers={"kid": self.kid, "typ": ACCESS_TOKEN_TYPE})
        return AccessToken(token, jti, float(exp))


def new_refresh_token() -> str:
    return REFRESH_TOKEN_PREFIX + b64url(secrets.token_bytes(REFRESH_TOKEN_BYTES))


def refresh_token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()
