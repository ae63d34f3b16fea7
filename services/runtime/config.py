"""Typed configuration from environment variables (ZYNK_*, nested with __) and an optional
TOML file named by ZYNK_CONFIG. Environment wins over the file; the file over defaults."""

from __future__ import annotations

import os
import pathlib
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
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
    # Presence: the gateway heartbeats every ~25 s per socket; a client flipping ONLINE/OFFLINE
    # in a loop would otherwise spam every watcher.
    presence_heartbeats_per_device: Rate = Rate(per_second=1, burst=10)
    # BatchGetPresence calls and WatchPresence opens (each may cost a messaging lookup).
    presence_reads_per_user: Rate = Rate(per_second=10, burst=100)
    # SetTyping: clients resend every few seconds while typing, not per keystroke.
    typing_per_device: Rate = Rate(per_second=2, burst=10)


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
    # Read-through cache of the public User resource (GetUser, LookupUser; seed §6.2: 1 h),
    # dropped by any write that changes it (services/auth/profiles.py).
    profile_cache_ttl_s: float = Field(3600.0, gt=0)


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
    # Partitions of a topic the bus creates; events are keyed (per-conversation order), so
    # this caps how many replicas of one consumer group share a topic's work.
    kafka_partitions: int = Field(default=12, ge=1, le=1024)
    # Replicas of each topic the bus creates: 3 on a production cluster.
    kafka_replication_factor: int = Field(default=1, ge=1)
    # Idempotent producer (no duplicates from producer retries). Kafka and Redpanda serve it;
    # the Tansu test broker cannot (see docs/backends.md), so tests turn it off.
    kafka_idempotence: bool = True
    # A publish fails (UNAVAILABLE, the outbox keeps the row) after this long without an ack.
    kafka_request_timeout_s: float = Field(default=10.0, gt=0)
    # Consumer-group liveness: a replica silent this long loses its partitions.
    kafka_session_timeout_s: float = Field(default=10.0, gt=0)
    # Cache, pub/sub, rate limits, revocations and presence.
    cache: Literal["memory", "redis"] = "memory"
    redis_url: str = ""
    # Prefixed to every Redis key and channel (lets test runs share one server).
    key_prefix: str = "zynk:"
    # Every Redis command gives up after this long (UNAVAILABLE), never hangs.
    redis_timeout_s: float = Field(default=1.0, gt=0)


class PostgresSettings(BaseModel):
    """PostgreSQL storage (services/runtime/postgres.py), used when backends.storage is
    "postgres". Every service keeps its tables in its own schema (named after the service),
    so one database can hold them all; `database_urls` sends a service elsewhere."""

    # Per-service override of backends.database_url, e.g. {"messaging": "postgresql://..."}.
    database_urls: dict[str, str] = Field(default_factory=dict)
    # One pool per service per process.
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=10, ge=1)
    # Server-side limits on every pooled connection: a runaway statement or a transaction
    # left open cannot hold locks for long.
    statement_timeout_s: float = Field(default=5.0, gt=0)
    idle_in_transaction_timeout_s: float = Field(default=30.0, gt=0)
    # Client-side limits, so a dead server or network gives a clear error, never a hang.
    connect_timeout_s: float = Field(default=5.0, gt=0)
    acquire_timeout_s: float = Field(default=5.0, gt=0)
    # Apply pending migrations when a service opens its database (as `zynk migrate` does);
    # false: refuse to start while migrations are pending (run `zynk migrate` as a job).
    migrate_on_start: bool = True
    # How long `zynk migrate` waits for another migrator of the same schema.
    migration_lock_timeout_s: float = Field(default=60.0, gt=0)


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

    # Members per group. At most 1000: messaging's ApplyGroupMembershipChange carries the
    # whole admin list and a deleted group's members in one request, capped at 1000 each.
    max_members: int = Field(1000, ge=2, le=1000)
    # Groups one user may create while owning them (a client-controlled resource).
    max_owned_groups: int = Field(500, ge=1)
    # Invites of one group that are usable at the same time.
    max_active_invites: int = Field(100, ge=1)
    # Relay of membership changes to messaging: how long an RPC waits for its change to be
    # relayed before answering anyway (the background relay finishes the job), the deadline
    # of one ApplyGroupMembershipChange call, and the retry backoff while messaging refuses.
    relay_inline_wait_s: float = Field(2.0, ge=0)
    relay_call_timeout_s: float = Field(5.0, gt=0)
    relay_backoff_initial_s: float = Field(0.5, gt=0)
    relay_backoff_max_s: float = Field(30.0, gt=0)
    # How often the relay looks for rows it was not told about (another replica's, or left
    # by a crash); a commit in this process wakes it at once.
    relay_poll_s: float = Field(5.0, gt=0)
    # Read-through cache of each group's state and members with roles (seed §6.2: 10 min),
    # dropped on every committed change; writes never decide on it (services/group/membership.py).
    membership_cache_ttl_s: float = Field(600.0, gt=0)


class PresenceSettings(BaseModel):
    """The presence service (services/presence); docs/presence.md explains each knob."""

    # A heartbeat keeps its device ONLINE this long; clients are told to heartbeat every
    # heartbeat_interval_s, so missing two turns makes the device OFFLINE.
    online_ttl_s: float = Field(60.0, gt=0)
    heartbeat_interval_s: float = Field(25.0, gt=0)
    # How often expired heartbeats are looked for (bounds how late an expiry is published).
    sweep_interval_s: float = Field(1.0, gt=0)
    # A typing indicator lapses this long after the last SetTyping(typing=true).
    typing_ttl_s: float = Field(6.0, gt=0)
    # How long messaging's answers (who shares a conversation, who is a member) are reused;
    # also how often a watch stream re-checks them.
    visibility_cache_s: float = Field(30.0, gt=0)
    # A watch stream with nothing to say sends a Keepalive this often.
    keepalive_s: float = Field(20.0, gt=0)
    # Concurrent WatchPresence streams per user (per replica).
    max_watches_per_user: int = Field(8, ge=1)
    # Last-seen is forgotten (the user then looks OFFLINE with no last_seen_time) this long
    # after the user went offline.
    last_seen_retention_s: float = Field(30 * 24 * 3600.0, gt=0)

    @model_validator(mode="after")
    def _interval_below_ttl(self) -> PresenceSettings:
        if self.heartbeat_interval_s >= self.online_ttl_s:
            raise ValueError("presence.heartbeat_interval_s must be below presence.online_ttl_s")
        return self


class RealtimeSettings(BaseModel):
    """The gateway's realtime WebSocket (gateway/realtime, docs/realtime.md)."""

    # Server pings and presence heartbeats this often; no sign of life for twice this closes
    # the socket (4408). Presence must accept heartbeats at least this far apart.
    heartbeat_interval_s: float = Field(25.0, gt=0)
    # Time an unauthenticated socket has to send its `auth` frame.
    auth_timeout_s: float = Field(10.0, gt=0)
    # Largest client frame (a larger one closes the socket with 1009).
    max_frame_bytes: int = Field(256 * 1024, ge=1024)
    # Unary calls (call, send, ack, read, typing, auth renewal) in flight per socket.
    max_calls_in_flight: int = Field(64, ge=1)
    # Client frames per socket; a client that empties the bucket is closed with 4429.
    frame_rate: Rate = Rate(per_second=100, burst=400)
    # A client that keeps the outbound buffer full (does not read) this long is dropped.
    stall_timeout_s: float = Field(30.0, gt=0)
    # Reconnecting the upstream streams after UNAVAILABLE: exponential backoff, full jitter
    # (a restarted service sees its sockets come back spread over this, then twice, ...).
    retry_initial_s: float = Field(1.0, gt=0)
    retry_max_s: float = Field(10.0, gt=0)
    # Deadline of the presence heartbeats the gateway sends for its sockets.
    presence_timeout_s: float = Field(5.0, gt=0)


class MeshSettings(BaseModel):
    """How processes are hosted (mesh/): the distributed runner and every process's backend
    probes. docs/distributed.md explains each knob."""

    # The credential services present to each other on internal RPCs (ZYNK_MESH__INTERNAL_TOKEN
    # or a file holding it). Distributed mode refuses to start without one; there is no
    # default. Embedded mode makes a fresh one per start (it never leaves the process).
    internal_token: SecretStr | None = None
    internal_token_file: pathlib.Path | None = None
    # Each process checks the servers it needs (PostgreSQL, Redis, Kafka) this often and
    # reports NOT_SERVING on its gRPC health while one does not answer within the timeout.
    probe_interval_s: float = Field(2.0, gt=0)
    probe_timeout_s: float = Field(2.0, gt=0)
    # Supervisor (`zynk up --distributed`): a child that dies is restarted after
    # restart_backoff_s, doubling up to restart_backoff_max_s (reset once it ran
    # restart_reset_s); restart=false makes a death stop the whole mesh instead.
    restart: bool = True
    restart_backoff_s: float = Field(1.0, gt=0)
    restart_backoff_max_s: float = Field(30.0, gt=0)
    restart_reset_s: float = Field(60.0, gt=0)
    # How long a child may take from spawn to serving.
    start_timeout_s: float = Field(60.0, gt=0)


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
    postgres: PostgresSettings = PostgresSettings()
    mesh: MeshSettings = MeshSettings()
    rate_limits: RateLimits = RateLimits()
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    max_request_bytes: int = 1024 * 1024
    max_message_bytes: int = 4 * 1024 * 1024
    shutdown_grace_s: float = 10.0
    default_deadline_s: float = 30.0
    # uvloop's transports and scheduling cost about half the CPU of asyncio's own on the
    # realtime and gRPC hot paths (bench/README.md); "asyncio" is there for debugging.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"

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
