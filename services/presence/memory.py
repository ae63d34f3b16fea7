"""In-process PresenceStore (embedded mode, and the rules' unit tests).

Every method runs without awaiting, so each is atomic on the event loop. Expiry uses a heap
of (expire_at, user, device) with lazy deletion: a refreshed lease leaves its old heap entry
behind, which `expire` skips when it no longer matches the lease. The heap therefore holds
about online_ttl / heartbeat_interval entries per live device, never more."""

from __future__ import annotations

import collections
import dataclasses
import heapq
from collections.abc import Sequence

from services.presence.store import Transition, UserPresence


@dataclasses.dataclass(frozen=True, slots=True)
class _Lease:
    seen_at: float
    expire_at: float


@dataclasses.dataclass(frozen=True, slots=True)
class _Record:
    online: bool
    since: float
    last_seen: float | None
    written: float  # for retention of offline records


class MemoryPresenceStore:
    def __init__(self, retention_s: float) -> None:
        self._retention_s = retention_s
        self._leases: dict[str, dict[str, _Lease]] = {}
        self._heap: list[tuple[float, str, str]] = []
        self._records: dict[str, _Record] = {}
        # Offline records in the order they were written, for retention.
        self._offline: collections.OrderedDict[str, float] = collections.OrderedDict()

    # -- Protocol --------------------------------------------------------------------------

    async def heartbeat(self, user_id: str, device_id: str, now: float,
                        expire_at: float) -> Transition:
        leases = self._leases.setdefault(user_id, {})
        live_before = _any_live(leases, now)
        for dev in [d for d, lease in leases.items() if lease.expire_at <= now]:
            del leases[dev]
        leases[device_id] = _Lease(now, expire_at)
        heapq.heappush(self._heap, (expire_at, user_id, device_id))
        if not live_before:
            self._write(user_id, _Record(True, now, None, now))
        rec = self._records[user_id]
        return Transition(UserPresence(user_id, True, rec.since, None), not live_before)

    async def sign_off(self, user_id: str, device_id: str, now: float) -> Transition:
        leases = self._leases.get(user_id, {})
        live_before = _any_live(leases, now)
        dropped = leases.pop(device_id, None)
        if _any_live(leases, now):
            return Transition(self._read(user_id, now), False)
        rec = self._records.get(user_id)
        if rec is None or not rec.online:
            self._leases.pop(user_id, None)
            return Transition(self._read(user_id, now), False)
        if live_before:
            since = last_seen = now
        else:
            dead = [*leases.values(), *([dropped] if dropped else [])]
            since = max(lease.expire_at for lease in dead)
            last_seen = max(lease.seen_at for lease in dead)
        self._leases.pop(user_id, None)
        self._write(user_id, _Record(False, since, last_seen, now))
        return Transition(UserPresence(user_id, False, since, last_seen), True)

    async def expire(self, now: float, limit: int) -> list[UserPresence]:
        touched: dict[str, tuple[float, float]] = {}  # user -> (newest expire_at, seen_at)
        dropped = 0
        while self._heap and self._heap[0][0] <= now and dropped < limit:
            expire_at, user_id, device_id = heapq.heappop(self._heap)
            leases = self._leases.get(user_id)
            lease = leases.get(device_id) if leases else None
            if lease is None or lease.expire_at != expire_at:
                continue  # refreshed or signed off since this entry was pushed
            del leases[device_id]
            dropped += 1
            prev = touched.get(user_id, (expire_at, lease.seen_at))
            touched[user_id] = (max(prev[0], expire_at), max(prev[1], lease.seen_at))
        out = []
        for user_id, (since, last_seen) in touched.items():
            if self._leases.get(user_id):
                continue  # another device is still alive (or waits for the next call)
            self._leases.pop(user_id, None)
            rec = self._records.get(user_id)
            if rec is not None and rec.online:
                self._write(user_id, _Record(False, since, last_seen, now))
                out.append(UserPresence(user_id, False, since, last_seen))
        self._forget(now)
        return out

    async def get(self, user_ids: Sequence[str], now: float) -> list[UserPresence]:
        return [self._read(u, now) for u in user_ids]

    async def close(self) -> None:
        self._leases.clear()
        self._heap.clear()
        self._records.clear()
        self._offline.clear()

    # -- internals -------------------------------------------------------------------------

    def _read(self, user_id: str, now: float) -> UserPresence:
        rec = self._records.get(user_id)
        if rec is None:
            return UserPresence(user_id, False, None, None)
        leases = self._leases.get(user_id, {})
        if rec.online:
            if _any_live(leases, now):
                return UserPresence(user_id, True, rec.since, None)
            if leases:  # expired, not swept yet: offline since the last lease lapsed
                return UserPresence(user_id, False, max(x.expire_at for x in leases.values()),
                                    max(x.seen_at for x in leases.values()))
            return UserPresence(user_id, False, rec.since, rec.last_seen)
        if rec.written + self._retention_s <= now:
            return UserPresence(user_id, False, None, None)
        return UserPresence(user_id, False, rec.since, rec.last_seen)

    def _write(self, user_id: str, rec: _Record) -> None:
        self._records[user_id] = rec
        self._offline.pop(user_id, None)
        if not rec.online:
            self._offline[user_id] = rec.written

    def _forget(self, now: float) -> None:
        while self._offline:
            user_id, written = next(iter(self._offline.items()))
            if written + self._retention_s > now:
                break
            del self._offline[user_id]
            rec = self._records.get(user_id)
            if rec is not None and not rec.online:
                del self._records[user_id]


def _any_live(leases: dict[str, _Lease], now: float) -> bool:
    return any(lease.expire_at > now for lease in leases.values())
