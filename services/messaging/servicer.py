"""MessagingService over gRPC: converts proto <-> domain calls, nothing else. The interceptor
has already authenticated the caller (per the `zynk.api.v1.access` option) and checked the
request's buf.validate rules."""

from __future__ import annotations

from services.messaging import names, views
from services.messaging.relay import serve_relay
from services.messaging.domain import EnvelopeIn, MessagingDomain, MessageView
from services.messaging.store import ConversationType
from services.runtime.context import current_principal
from services.runtime.errors import InvalidArgument
from zynk.messaging.v1 import messaging_pb2 as pb
from zynk.messaging.v1 import messaging_pb2_grpc


def _message(view: MessageView, now: float) -> pb.Message:
    return views.message(view.row, now, envelope=view.envelope,
                         sender_key_visible=view.sender_key_visible, digests=view.digests)


def _mesh_user(name: str, field: str) -> str:
    """A user named by id, for the internal methods (`users/me` means nothing there)."""
    user_id = names.parse_user(name, field)
    if user_id == names.ME:
        raise InvalidArgument("`users/me` has no meaning inside the mesh",
                              field_violations=[(field, "name a user by id")])
    return user_id


_TYPES = {ConversationType.DIRECT: pb.Conversation.TYPE_DIRECT,
          ConversationType.GROUP: pb.Conversation.TYPE_GROUP}


class MessagingServicer(messaging_pb2_grpc.MessagingServiceServicer):
    def __init__(self, domain: MessagingDomain, clock) -> None:
        self._d = domain
        self._clock = clock

    # -- conversations -------------------------------------------------------------------

    async def CreateConversation(self, request, context):
        c = request.conversation
        caller = current_principal()
        if c.type == pb.Conversation.TYPE_GROUP:
            row, read = await self._d.get_group_conversation(
                caller, names.parse_group(c.group, "conversation.group"))
        else:
            row, read = await self._d.create_direct(
                caller, [names.parse_user(p, f"conversation.participants[{i}]")
                         for i, p in enumerate(c.participants)])
        return pb.CreateConversationResponse(conversation=views.conversation(row, read))

    async def GetConversation(self, request, context):
        row, read = await self._d.get_conversation(
            current_principal(), names.parse_conversation(request.name, "name"))
        return pb.GetConversationResponse(conversation=views.conversation(row, read))

    async def ListConversations(self, request, context):
        page = await self._d.list_conversations(current_principal(), request.page_size,
                                                request.page_token)
        return pb.ListConversationsResponse(
            conversations=[views.conversation(row, read) for row, read in page.items],
            next_page_token=page.next_page_token)

    async def UpdateConversation(self, request, context):
        c = request.conversation
        ttl = c.message_ttl.ToNanoseconds() / 1e9 if c.HasField("message_ttl") else None
        row, read = await self._d.update_message_ttl(
            current_principal(), names.parse_conversation(c.name, "conversation.name"), ttl,
            c.etag, list(request.update_mask.paths))
        return pb.UpdateConversationResponse(conversation=views.conversation(row, read))

    # -- messages ------------------------------------------------------------------------

    async def SendMessage(self, request, context):
        conversation_id = names.parse_conversation(request.parent, "parent")
        if request.WhichOneof("content") == "pairwise":
            envelopes = [EnvelopeIn(e.recipient_device, e.type, e.ciphertext)
                         for e in request.pairwise.envelopes]
            row = await self._d.send(current_principal(), conversation_id, request.message_id,
                                     envelopes, None)
        else:
            row = await self._d.send(current_principal(), conversation_id, request.message_id,
                                     None, request.sender_key.ciphertext)
        return pb.SendMessageResponse(message=views.message(row, self._clock()))

    async def GetMessage(self, request, context):
        conversation_id, message_id = names.parse_message(request.name, "name")
        view = await self._d.get_message(current_principal(), conversation_id, message_id)
        return pb.GetMessageResponse(message=_message(view, self._clock()))

    async def ListMessages(self, request, context):
        page = await self._d.list_messages(
            current_principal(), names.parse_conversation(request.parent, "parent"),
            request.page_size, request.page_token, request.min_sequence, request.max_sequence,
            request.order_by)
        now = self._clock()
        return pb.ListMessagesResponse(messages=[_message(v, now) for v in page.items],
                                       next_page_token=page.next_page_token)

    async def DeleteMessage(self, request, context):
        conversation_id, message_id = names.parse_message(request.name, "name")
        row = await self._d.delete_message(current_principal(), conversation_id, message_id)
        return pb.DeleteMessageResponse(message=views.message(row, self._clock()))

    async def MarkRead(self, request, context):
        read = await self._d.mark_read(
            current_principal(), names.parse_conversation(request.conversation, "conversation"),
            request.read_sequence, request.suppress_receipts)
        return pb.MarkReadResponse(read_sequence=read)

    async def ListReceipts(self, request, context):
        conversation_id, message_id = names.parse_message(request.parent, "parent")
        page = await self._d.list_receipts(current_principal(), conversation_id, message_id,
                                           request.page_size, request.page_token)
        return pb.ListReceiptsResponse(
            receipts=[views.receipt(conversation_id, message_id, r) for r in page.items],
            next_page_token=page.next_page_token)

    # -- inbox ---------------------------------------------------------------------------

    async def Subscribe(self, request, context):
        stream = self._d.subscribe(current_principal(),
                                   names.parse_device(request.device, "device"),
                                   request.after_cursor)
        async for response in stream:
            yield response

    async def AcknowledgeDeliveries(self, request, context):
        pending = await self._d.acknowledge(current_principal(),
                                            names.parse_device(request.device, "device"),
                                            request.cursor)
        return pb.AcknowledgeDeliveriesResponse(pending_count=pending)

    def Relay(self, request_iterator, context):
        """Many devices' inboxes and calls over one stream (services/messaging/relay.py)."""
        return serve_relay(self, request_iterator)

    # -- internal ------------------------------------------------------------------------

    async def ApplyGroupMembershipChange(self, request, context):
        conversation_id, sequence = await self._d.apply_group_change(
            names.parse_group(request.group, "group"), request.change_id.lower(),
            _mesh_user(request.actor, "actor"),
            [_mesh_user(u, f"added_users[{i}]") for i, u in enumerate(request.added_users)],
            [_mesh_user(u, f"removed_users[{i}]") for i, u in enumerate(request.removed_users)],
            request.group_deleted,
            [_mesh_user(u, f"admins[{i}]") for i, u in enumerate(request.admins)])
        return pb.ApplyGroupMembershipChangeResponse(
            conversation=names.conversation_name(conversation_id), sequence=sequence)

    async def CheckConversationMembership(self, request, context):
        member, kind, group_id = await self._d.check_membership(
            names.parse_conversation(request.conversation, "conversation"),
            _mesh_user(request.user, "user"))
        return pb.CheckConversationMembershipResponse(
            member=member, type=_TYPES.get(kind, pb.Conversation.TYPE_UNSPECIFIED),
            group=names.group_name(group_id) if group_id else "")

    async def FilterConversationPeers(self, request, context):
        user_id = _mesh_user(request.user, "user")
        candidates = [_mesh_user(u, f"users[{i}]") for i, u in enumerate(request.users)]
        peers = await self._d.conversation_peers(user_id, candidates)
        return pb.FilterConversationPeersResponse(peers=[names.user_name(u) for u in peers])
