"""Revoked devices. Access tokens are verified locally by every service, so revoking a
device must reach every verifier at once: the auth service records revocations here and
verifiers consult it on every call. An entry only needs to outlive the longest access
token, after which the token itself has expired."""

from __future__ import annotations

import time
from typing import Protocol


class RevocationList(Protocol):
    async def revoke(self, device_id: str, until: float) -> None:
        """Refuse tokens of `device_id` until wall-clock time `until` (epoch seconds)."""

    async def is_revoked(self, device_id: str) -> bool: ...


class MemoryRevocationList:
    def __init__(self, clock=time.time) -> None:
        self._until: dict[str, float] = {}
        self._clock = clock

    async def revoke(self, device_id: str, until: float) -> None:
        self._until[device_id] = max(until, self._until.get(device_id, 0.0))
        self._sweep()

    async def is_revoked(self, device_id: str) -> bool:
        until = self._until.get(device_id)
        return until is not None and until > self._clock()

    def _sweep(self) -> None:
        if len(self._until) % 256 == 0:
            now = self._clock()
            for k in [k for k, u in self._until.items() if u <= now]:
                del self._until[k]
