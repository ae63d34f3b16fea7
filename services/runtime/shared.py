"""What a composition root builds once per process and hands to every service it hosts."""

from __future__ import annotations

import dataclasses

from services.runtime.bus import EventBus
from services.runtime.cache import Cache
from services.runtime.channels import Channels
from services.runtime.config import Settings
from services.runtime.pubsub import PubSub
from services.runtime.ratelimit import RateLimiter
from services.runtime.revocations import RevocationList
from services.runtime.tokens import JwksKeySource, TokenVerifier


@dataclasses.dataclass
class Shared:
    settings: Settings
    bus: EventBus
    limiter: RateLimiter
    revocations: RevocationList
    channels: Channels
    keys: JwksKeySource
    verifier: TokenVerifier
    internal_token: str
    # Realtime wake-ups between tasks/replicas (best-effort) and the shared TTL cache.
    pubsub: PubSub
    cache: Cache
