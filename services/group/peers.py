"""The group service's calls to its neighbours, over the mesh's internal channels:
AuthService.ListActiveDevices (do these users exist?) and
MessagingService.ApplyGroupMembershipChange (the relay's sink). The channels add the internal
credential, the request id and deadline propagation."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from services.group import names
from services.runtime.channels import Channels
from services.runtime.errors import Unavailable
from zynk.auth.v1 import auth_pb2, auth_pb2_grpc
from zynk.messaging.v1 import messaging_pb2, messaging_pb2_grpc

AUTH = "zynk.auth.v1.AuthService"
MESSAGING = "zynk.messaging.v1.MessagingService"
LIST_ACTIVE_DEVICES_MAX = 1000  # the contract's max_items


def _stub(owner, full_name: str, stub_class):
    """The stub for the service's current channel, made once per channel (Channels hands out
    the same channel until it is closed)."""
    channel = owner._channels.get(full_name)
    cached = getattr(owner, "_cached", None)
    if cached is None or cached[0] is not channel:
        cached = owner._cached = (channel, stub_class(channel))
    return cached[1]


class AuthUserDirectory:
    """Which users exist, asked of the auth service (it answers for existing users only)."""

    def __init__(self, channels: Channels, timeout_s: float = 5.0) -> None:
        self._channels = channels
        self._timeout_s = timeout_s

    async def existing(self, user_ids: Sequence[str]) -> set[str]:
        stub = _stub(self, AUTH, auth_pb2_grpc.AuthServiceStub)
        ids = list(dict.fromkeys(user_ids))
        found: set[str] = set()
        for i in range(0, len(ids), LIST_ACTIVE_DEVICES_MAX):
            chunk = ids[i:i + LIST_ACTIVE_DEVICES_MAX]
            try:
                resp = await stub.ListActiveDevices(
                    auth_pb2.ListActiveDevicesRequest(users=[names.user_name(u) for u in chunk]),
                    timeout=self._timeout_s)
            except grpc.aio.AioRpcError as e:
                # Without the answer nobody can be added; the caller may retry.
                raise Unavailable("cannot check the users right now; try again",
                                  reason="AUTH_UNAVAILABLE") from e
            found.update(u.user.removeprefix("users/") for u in resp.users)
        return found


class MessagingSink:
    """Delivers one membership change to messaging; any error propagates to the relay."""

    def __init__(self, channels: Channels, timeout_s: float) -> None:
        self._channels = channels
        self._timeout_s = timeout_s

    async def apply(self, request: messaging_pb2.ApplyGroupMembershipChangeRequest) -> None:
        stub = _stub(self, MESSAGING, messaging_pb2_grpc.MessagingServiceStub)
        await stub.ApplyGroupMembershipChange(request, timeout=self._timeout_s)
