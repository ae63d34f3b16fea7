"""RelayLink's slot bookkeeping, driven by hand (no stream)."""

from gateway.realtime.relay import RelayLink
from zynk.messaging.v1 import messaging_pb2 as pb


class Conn:
    token, device, cursor = "t", "users/u/devices/d", ""

    def __init__(self) -> None:
        self.slot = 0
        self.seen: list[str] = []

    def on_inbox(self, item) -> None:
        self.seen.append(item.cursor)


def inbox(slot: int, cursor: str) -> pb.RelayResponse:
    return pb.RelayResponse(items=[pb.RelayResponseItem(
        slot=slot, inbox=pb.SubscribeResponse(cursor=cursor))])


async def test_a_reattached_socket_gets_a_new_slot_and_the_old_attachments_entries_are_dropped():
    link = RelayLink(None, retry_initial_s=0.1, retry_max_s=1.0, timeout_s=1.0)
    link._task, link._call = object(), object()  # as if the stream were open
    conn = Conn()
    conn.slot = old = link.attach(conn)
    link.detach(old, forget=False)  # its client stopped reading
    link.reattach(old)
    assert conn.slot != old and link.slots == {conn.slot: conn}
    # Entries of the old attachment still in flight (messaging does not confirm a detach
    # the gateway asked for) must not reach the client after its cursor moved back.
    link._dispatch(inbox(old, "stale"))
    link._dispatch(inbox(conn.slot, "fresh"))
    assert conn.seen == ["fresh"]
    kinds = [(i.slot, i.WhichOneof("kind")) for i in link._out]
    assert kinds == [(old, "attach"), (old, "detach"), (conn.slot, "attach")]
