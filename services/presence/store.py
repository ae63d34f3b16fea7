"""The presence storage interface: device leases with an expiry, and one record per user.

Nothing here is durable by design: presence is only useful now, and it is sensitive metadata.
The embedded adapter (memory.py) keeps it in the process; the Redis adapter (redis.py, the
distributed mode) shares it between replicas; both pass the same contract tests
(tests/contract/test_presence_store.py).

The model, which Redis implements with one small Lua script per method (every method is
atomic, and `expire` hands each expired lease to exactly one caller even when several
replicas sweep at once):

- a *lease* per device: (seen_at, expire_at). A heartbeat writes it; it is live while
  `now < expire_at`. (Redis: hash `presence:leases:{user}` device -> "seen_at expire_at", plus
  one global sorted set `presence:expiry` of the leases, scored by expire_at.)
- a *record* per user: the last reported state (online or not), `since` (when that state
  began) and `last_seen` (the last moment a device of the user was known alive). Offline
  records are forgotten `retention_s` after they were written. (Redis: hash
  `presence:user:{user}` with PEXPIRE set when it goes offline, PERSIST when it comes online.)

Times are wall-clock epoch seconds passed in by the caller (the domain's clock), never read
by the adapter, so every replica and every test agrees on what "now" is.

Invariants every adapter keeps:
- a user with a live lease reads as online, whatever the sweeper has or has not done yet;
- `since` only moves forward for a user, so a consumer can order two reports of one user
  by `since` (a report older than the last one seen is stale);
- a state change is reported by exactly one call (`changed=True` or an `expire` result).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol


@dataclasses.dataclass(frozen=True, slots=True)
class UserPresence:
    user_id: str
    online: bool
    # When the current state began (epoch s); None for a user with no record.
    since: float | None
    # Last moment a device of the user was known alive; None while online and when unknown.
    last_seen: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class Transition:
    presence: UserPresence  # the user's presence after the call
    changed: bool  # the user went offline -> online or online -> offline


class PresenceStore(Protocol):
    async def heartbeat(self, user_id: str, device_id: str, now: float,
                        expire_at: float) -> Transition:
        """The device is alive at `now` and stays so until `expire_at` (> now). The user's
        dead leases are dropped; `changed` when the user had no live lease before."""

    async def sign_off(self, user_id: str, device_id: str, now: float) -> Transition:
        """Drops the device's lease. When no live lease is left and the user was reported
        online, the user goes offline (`changed`): since = last_seen = `now` if a lease was
        still live, else (only dead, unswept leases) since = their newest expire_at and
        last_seen = their newest seen_at. Signing off an unknown device changes nothing else."""

    async def expire(self, now: float, limit: int) -> list[UserPresence]:
        """Drops up to `limit` leases with expire_at <= now (earliest first; the rest wait for
        the next call) and returns the users this leaves with no lease while reported online,
        now offline with since = the newest dropped expire_at and last_seen = the newest
        dropped seen_at. Also forgets offline records older than the retention."""

    async def get(self, user_ids: Sequence[str], now: float) -> list[UserPresence]:
        """Presence of each user as of `now`, in order (unknown users: offline, no times).
        Leases that expired but were not swept yet already count as gone."""

    async def close(self) -> None: ...
