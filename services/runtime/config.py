"""Typed configuration from environment variables (ZYNK_*, nested with __) and an optional
TOML file named by ZYNK_CONFIG. Environment wins over the file; the file over defaults."""

from __future__ import annotations

import os
import pathlib
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

SERVICES = (
    "auth", "messaging", "call", "file", "group", "presence", "proximity",
    "notification", "search", "analytics", "identity", "audit",
)


class Ports(BaseModel):
    """Listening ports (seed §3.1). 0 picks a free port (tests)."""

    auth: int = 8001
    messaging: int = 8002
    call: int = 8003
    file: int = 8004
    group: int = 8005
    presence: int = 8006
    proximity: int = 8007
    notification: int = 8008
    search: int = 8009
    analytics: int = 8010
    identity: int = 8011
    audit: int = 8012
    gateway: int = 8080


class Rate(BaseModel):
    """A token bucket: `burst` tokens, refilled at `per_second`."""

    per_second: float
    burst: int


class RateLimits(BaseModel):
    login_per_account: Rate = Rate(per_second=5 / 60, burst=5)
    login_per_address: Rate = Rate(per_second=20 / 60, burst=20)
    register_per_address: Rate = Rate(per_second=5 / 3600, burst=5)
    refresh_per_device: Rate = Rate(per_second=1, burst=10)
    prekey_claims_per_user: Rate = Rate(per_second=2, burst=60)
    sends_per_device: Rate = Rate(per_second=50, burst=200)


class AuthSettings(BaseModel):
    issuer: str = "zynk"
    audience: str = "zynk-api"
    access_ttl_s: int = 900
    refresh_ttl_s: int = 30 * 24 * 3600
    # PEM file of the Ed25519 signing key; default: <data_dir>/keys/jwt-ed25519.pem,
    # created with mode 0600 on first start.
    signing_key_path: pathlib.Path | None = None
    # argon2id cost; the defaults follow RFC 9106's second recommended option.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 64 * 1024
    argon2_parallelism: int = 2
    max_one_time_prekeys: int = 500


class Backends(BaseModel):
    """Which adapter serves each port. The embedded mode uses the in-process/SQLite ones; the
    distributed mode PostgreSQL, Redis and Kafka. Chosen by configuration only."""

    storage: Literal["sqlite", "postgres"] = "sqlite"
    # postgresql://user@host:port/db (asyncpg); each service keeps its tables in its own schema.
    database_url: str = ""
    bus: Literal["memory", "kafka"] = "memory"
    kafka_bootstrap: str = ""
    # Prefixed to every topic and consumer group (lets test runs share one broker).
    topic_prefix: str = ""
    # Cache, pub/sub, rate limits, revocations and presence.
    cache: Literal["memory", "redis"] = "memory"
    redis_url: str = ""
    # Prefixed to every Redis key and channel (lets test runs share one server).
    key_prefix: str = "zynk:"


class MessagingSettings(BaseModel):
    """The messaging service (services/messaging)."""

    # Cap on the ciphertext bytes of one SendMessage (all envelopes together); each envelope
    # is also capped at 64 KiB by the contract.
    max_send_bytes: int = 2 * 1024 * 1024
    # Active device lists fetched from auth are cached this long (dropped on devices.changed).
    device_cache_ttl_s: float = 60.0
    # In-process cache of conversation membership/settings; writes re-check it in their
    # transaction, so this only bounds how long another replica's change can go unseen by reads.
    conversation_cache_ttl_s: float = 30.0
    # Idle Subscribe streams get a Keepalive this often (and re-check the store and revocation).
    keepalive_s: float = 15.0
    # Inbox entries read per query when replaying a backlog.
    replay_page_size: int = 256
    # How often expired (disappearing) messages are erased.
    expiry_sweep_interval_s: float = 5.0
    # Group commit: under sustained load the database writer waits this long for more
    # sends/acks before committing (fewer, bigger commits for a little latency).
    write_linger_s: float = 0.002


class GroupSettings(BaseModel):
    """The group service (services/group)."""


class PresenceSettings(BaseModel):
    """The presence service (services/presence)."""


class RealtimeSettings(BaseModel):
    """The gateway's realtime WebSocket (gateway/realtime)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ZYNK_", env_nested_delimiter="__", extra="forbid"
    )

    mode: Literal["embedded", "distributed"] = "embedded"
    data_dir: pathlib.Path = pathlib.Path(".zynk-data")
    host: str = "127.0.0.1"
    ports: Ports = Ports()
    # Where each service is reached; empty means host:port from `ports`.
    addresses: dict[str, str] = Field(default_factory=dict)
    auth: AuthSettings = AuthSettings()
    messaging: MessagingSettings = MessagingSettings()
    group: GroupSettings = GroupSettings()
    presence: PresenceSettings = PresenceSettings()
    realtime: RealtimeSettings = RealtimeSettings()
    backends: Backends = Backends()
    rate_limits: RateLimits = RateLimits()
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    max_request_bytes: int = 1024 * 1024
    max_message_bytes: int = 4 * 1024 * 1024
    shutdown_grace_s: float = 10.0
    default_deadline_s: float = 30.0

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = os.environ.get("ZYNK_CONFIG")
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    def address_of(self, service: str) -> str:
        if service in self.addresses:
            return self.addresses[service]
        return f"{self.host}:{getattr(self.ports, service)}"

    def db_path(self, service: str) -> pathlib.Path:
        return self.data_dir / f"{service}.sqlite3"
