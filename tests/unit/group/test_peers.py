"""The group service's clients of its neighbours, when the neighbour cannot be reached."""

from __future__ import annotations

import pytest

from services.group.peers import AUTH, MESSAGING, AuthUserDirectory, MessagingSink
from services.runtime.channels import Channels
from services.runtime.errors import Unavailable
from zynk.messaging.v1 import messaging_pb2

# Nothing listens on port 1 of the loopback: connections are refused at once.
NOWHERE = "127.0.0.1:1"


async def test_auth_unreachable_is_unavailable_not_internal():
    channels = Channels({AUTH: NOWHERE}, "token", 2.0)
    try:
        with pytest.raises(Unavailable) as e:
            await AuthUserDirectory(channels, timeout_s=2.0).existing(["u1"])
        assert e.value.reason == "AUTH_UNAVAILABLE"
    finally:
        await channels.close()


async def test_messaging_unreachable_raises_for_the_relay_to_retry():
    channels = Channels({MESSAGING: NOWHERE}, "token", 2.0)
    try:
        with pytest.raises(Exception):  # noqa: B017 - any failure keeps the row pending
            await MessagingSink(channels, 2.0).apply(
                messaging_pb2.ApplyGroupMembershipChangeRequest(group="groups/g"))
    finally:
        await channels.close()
