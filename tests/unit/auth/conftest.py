"""The auth domain over the in-memory store, with a controllable clock, the real token
issuer and the runtime's shared TokenVerifier."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.auth.domain import AuthDomain, LoginResult
from services.auth.memory import MemoryAuthStore
from services.auth.signing import TokenIssuer
from services.runtime.config import Settings
from services.runtime.context import Principal
from services.runtime.ratelimit import MemoryRateLimiter
from services.runtime.revocations import MemoryRevocationList
from services.runtime.tokens import JwksKeySource, TokenVerifier
from tests.support.auth import auth_test_settings
from tests.support.clock import FakeClock

PASSWORD = "correct horse battery"


@dataclasses.dataclass
class AuthEnv:
    settings: Settings
    store: MemoryAuthStore
    issuer: TokenIssuer
    limiter: MemoryRateLimiter
    revocations: MemoryRevocationList
    clock: FakeClock
    domain: AuthDomain
    verifier: TokenVerifier

    def new_domain(self, settings: Settings | None = None, revocations=None) -> AuthDomain:
        """Another domain on the same store (a restart, or a config change)."""
        return AuthDomain(self.store, self.issuer, self.limiter,
                          revocations or self.revocations, settings or self.settings,
                          clock=self.clock)

    async def signup(self, username: str, password: str = PASSWORD,
                     device: str = "phone") -> LoginResult:
        await self.domain.register(username, password, "", "10.0.0.1")
        return await self.domain.login(username, password, device, "10.0.0.1")


def principal(login: LoginResult) -> Principal:
    return Principal(user_id=login.user.id, device_id=login.device.id)


def make_env(settings: Settings) -> AuthEnv:
    store = MemoryAuthStore()
    issuer = TokenIssuer(Ed25519PrivateKey.generate(), settings.auth)
    limiter = MemoryRateLimiter()
    revocations = MemoryRevocationList()
    clock = FakeClock()
    domain = AuthDomain(store, issuer, limiter, revocations, settings, clock=clock)

    async def fetch():
        return issuer.jwks()

    keys = JwksKeySource(fetch)
    keys.set_keys(issuer.jwks())
    verifier = TokenVerifier(keys, settings.auth.issuer, settings.auth.audience, revocations)
    return AuthEnv(settings, store, issuer, limiter, revocations, clock, domain, verifier)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return auth_test_settings(tmp_path, max_one_time_prekeys=10)


@pytest.fixture
def env(settings) -> AuthEnv:
    return make_env(settings)
