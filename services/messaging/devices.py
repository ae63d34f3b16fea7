"""Active devices of users, as the auth service knows them (envelope checks and fan-out).

Lists are cached in the shared cache under `msg:devices:<user id>` (value: a serialized
zynk.auth.v1.UserDevices) for `device_cache_ttl_s`, dropped when a `devices.changed` event
says the user's devices changed, and fetched fresh (bypassing the cache) when the caller asks
for it, e.g. before refusing a send with DEVICE_MISMATCH: a stale cache may make a check
retry, never wrongly fail."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence

import grpc

from services.messaging import names
from services.runtime import logging as zlog
from services.runtime import hints
from services.runtime.cache import Cache
from services.runtime.pubsub import PubSub, SubscriptionOverflow
from services.runtime.errors import Unavailable
from zynk.auth.v1 import auth_pb2, auth_pb2_grpc

log = zlog.get("messaging.devices")

CACHE_PREFIX = "msg:devices:"
MAX_USERS_PER_FETCH = 1000  # ListActiveDevicesRequest.users max_items

# user ids -> {user id: device ids} for the users that exist
Fetch = Callable[[Sequence[str]], Awaitable[dict[str, tuple[str, ...]]]]


def cache_key(user_id: str) -> str:
    return CACHE_PREFIX + user_id


def auth_fetcher(channel: Callable[[], grpc.aio.Channel], timeout_s: float = 5.0) -> Fetch:
    """ListActiveDevices on the auth service. `channel` gives the mesh channel to auth (it
    carries the internal credential); it is asked on first use, once the mesh knows where
    auth listens."""
    stubs: list[auth_pb2_grpc.AuthServiceStub] = []

    async def fetch(user_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        if not stubs:
            stubs.append(auth_pb2_grpc.AuthServiceStub(channel()))
        try:
            resp = await stubs[0].ListActiveDevices(auth_pb2.ListActiveDevicesRequest(
                users=[names.user_name(u) for u in user_ids]), timeout=timeout_s)
        except grpc.aio.AioRpcError as e:
            log.warning("ListActiveDevices failed", code=e.code().name)
            raise Unavailable("the device directory is unavailable; retry",
                              reason="DEVICES_UNAVAILABLE") from None
        return {names.parse_user(u.user, "user"): _device_ids(u) for u in resp.users}

    return fetch


def _device_ids(u: auth_pb2.UserDevices) -> tuple[str, ...]:
    return tuple(names.parse_device(d, "device")[1] for d in u.devices)


class DeviceDirectory:
    def __init__(self, cache: Cache, fetch: Fetch, ttl_s: float) -> None:
        self._cache = cache
        self._fetch = fetch
        self._ttl_s = ttl_s
        # Parsed form of cached values (the same bytes come back on every send).
        self._parsed: dict[bytes, tuple[str, ...]] = {}

    async def devices(self, user_ids: Iterable[str], *,
                      fresh: bool = False) -> dict[str, tuple[str, ...]]:
        """Active device ids of each user that exists (unknown users are absent)."""
        out: dict[str, tuple[str, ...]] = {}
        missing: list[str] = []
        for user_id in dict.fromkeys(user_ids):
            raw = None if fresh else await self._cache.get(cache_key(user_id))
            if raw is None:
                missing.append(user_id)
                continue
            devices = self._parsed.get(raw)
            if devices is None:
                if len(self._parsed) >= 10_000:
                    self._parsed.clear()
                devices = self._parsed[raw] = _device_ids(auth_pb2.UserDevices.FromString(raw))
            out[user_id] = devices
        for i in range(0, len(missing), MAX_USERS_PER_FETCH):
            found = await self._fetch(missing[i:i + MAX_USERS_PER_FETCH])
            for user_id, devices in found.items():
                out[user_id] = devices
                value = auth_pb2.UserDevices(
                    user=names.user_name(user_id),
                    devices=[names.device_name(user_id, d) for d in devices])
                await self._cache.set(cache_key(user_id), value.SerializeToString(),
                                      self._ttl_s)
        return out

    async def drop(self, user_id: str) -> None:
        await self._cache.delete(cache_key(user_id))

    async def follow_hints(self, pubsub: PubSub) -> None:
        """Drop a user's list as soon as auth hints that their devices changed (runtime/
        hints.py); the devices.changed event does the same later, and is the guarantee."""
        sub = await pubsub.subscribe([hints.DEVICES_CHANGED])
        try:
            while True:
                try:
                    _channel, data = await sub.get()
                except SubscriptionOverflow:
                    continue  # hints lost: the events still come
                try:
                    await self.drop(data.decode())
                except Exception:
                    log.warning("device hint not applied; the event will be")
        finally:
            await sub.close()
