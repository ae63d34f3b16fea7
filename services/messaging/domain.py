"""The messaging rules: who may send and read, envelope coverage, idempotency, sequencing,
receipts, read positions, group membership changes, disappearing messages.

Nothing here knows gRPC or SQL: the servicer hands in plain values and the caller's
Principal; the store (store.py) holds the state and allocates sequences inside its
transactions; errors are the runtime's domain errors.

The rules, in one place:
- Only current members read or write a conversation (PERMISSION_DENIED otherwise, whether
  or not it exists: AIP-211). A closed conversation (group deleted) is read-only.
- A pairwise send must carry one envelope for exactly the active devices of every member,
  minus the sending device; a sender-key send is for group conversations only and is queued
  for every member device but the sender's. Device lists come from auth (cached); a mismatch
  is re-checked against a fresh list before it is refused with DEVICE_MISMATCH.
- The message id is the idempotency key: the same id with the same content from the same
  device returns the stored message (even if the device set or membership changed since);
  anything else under a used id is ALREADY_EXISTS.
- Each member device's inbox gets one entry per message; acknowledging entries marks the
  messages delivered to the user (first time only) and queues DELIVERED receipts for the
  senders' devices: one ReceiptEvent per (sender, conversation) per acknowledgement.
- Read positions only move forward; the user's other devices get the new position, the
  senders of the newly read messages a READ receipt unless the reader suppresses receipts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
import uuid
from collections.abc import Callable, Sequence

from services.messaging import cursors, events, hashing, names, views
from services.messaging.conversations import ConversationCache
from services.messaging.devices import DeviceDirectory
from services.messaging.live import InboxPublisher, InboxStreams
from services.messaging.store import (
    Acknowledged,
    Appended,
    Changed,
    ConversationRow,
    ConversationState,
    ConversationType,
    ConversationWrite,
    CursorAhead,
    Delivered,
    DevicesOf,
    EntryKind,
    EnvelopeRow,
    Existing,
    Fanout,
    MessageKind,
    MessageRow,
    MessageStore,
    NewEntry,
    NewMessage,
    NotMember,
    QueuedEntry,
    ReadMarked,
    ReceiptRow,
    Recipient,
    SequenceAhead,
    StepKind,
    SystemStep,
)
from services.runtime import logging as zlog
from services.runtime import paging
from services.runtime.config import Settings
from services.runtime.context import Principal
from services.runtime.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
    ZynkError,
)
from services.runtime.events import new_id
from services.runtime.pbtime import duration, timestamp
from services.runtime.ratelimit import RateLimiter, enforce
from zynk.messaging.v1 import messaging_pb2 as pb

log = zlog.get("messaging")

MAX_RECEIPT_MESSAGES = 500  # message names per ReceiptEvent (a huge ack is split)
MISMATCH_LIST_MAX = 20  # device names per ErrorInfo list (trailers must stay small)
STALE_RETRIES = 5
UPDATABLE_CONVERSATION_FIELDS = frozenset({"message_ttl"})
EXPIRY_BATCH = 500


@dataclasses.dataclass(frozen=True, slots=True)
class EnvelopeIn:
    recipient_device: str  # users/{uuid}/devices/{uuid}, as sent
    type: int
    ciphertext: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class MessageView:
    row: MessageRow
    envelope: EnvelopeRow | None = None
    sender_key_visible: bool = True
    digests: Sequence[hashing.EnvelopeDigest] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    items: list
    next_page_token: str


class DeviceMismatch(FailedPrecondition):
    def __init__(self, missing: set[str], extra: set[str]) -> None:
        def listed(names_: set[str]) -> str:
            return ",".join(sorted(names_)[:MISMATCH_LIST_MAX])

        metadata = {"missing_devices": listed(missing), "extra_devices": listed(extra)}
        if len(missing) > MISMATCH_LIST_MAX or len(extra) > MISMATCH_LIST_MAX:
            metadata["truncated"] = "true"  # the client lists devices itself (auth)
        super().__init__(
            f"the envelopes do not match the conversation's active devices "
            f"({len(missing)} missing, {len(extra)} not expected); claim bundles for new "
            f"devices, drop revoked ones and retry with the same message id",
            reason="DEVICE_MISMATCH", metadata=metadata)
        self.missing = missing
        self.extra = extra


def _not_member() -> PermissionDenied:
    return PermissionDenied("you are not a member of this conversation",
                            reason="NOT_A_MEMBER")


def _user_ref(caller: Principal, ref: str) -> str:
    return caller.user_id if ref == names.ME else ref


def _sent_events(conversation_type: ConversationType, row: MessageRow) -> list:
    return [events.message_sent(row, conversation_type)]


class MessagingDomain:
    def __init__(self, store: MessageStore, devices: DeviceDirectory,
                 conversations: ConversationCache, publisher: InboxPublisher,
                 streams: InboxStreams, limiter: RateLimiter, settings: Settings,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._devices = devices
        self._conversations = conversations
        self._publisher = publisher
        self._streams = streams
        self._limiter = limiter
        self._settings = settings.messaging
        self._send_rate = settings.rate_limits.sends_per_device
        self._clock = clock

    # -- conversations -------------------------------------------------------------------

    async def create_direct(self, caller: Principal,
                            participants: Sequence[str]) -> tuple[ConversationRow, int]:
        others = {_user_ref(caller, p) for p in participants} - {caller.user_id}
        if len(others) != 1:
            raise InvalidArgument(
                "a direct conversation is between you and exactly one other user",
                field_violations=[("conversation.participants",
                                   "name the other user (you are added)")],
                reason="INVALID_PARTICIPANTS")
        other = others.pop()
        existing = await self._store.find_direct(caller.user_id, other)
        if existing is None:
            users = sorted((caller.user_id, other))
            devices = await self._devices.devices(users)
            if other not in devices:
                raise NotFound(f"user {names.user_name(other)} not found",
                               reason="USER_NOT_FOUND")
            step = self._system_step(StepKind.CREATE, pb.SystemEvent.TYPE_CONVERSATION_CREATED,
                                     caller.user_id, users, devices)
            outcome = await self._store.change_conversation(ConversationWrite(
                conversation_id=str(uuid.uuid4()), expected_version=0, steps=[step],
                now=self._clock(), type=ConversationType.DIRECT, direct_users=tuple(users)))
            if isinstance(outcome, Changed):
                await self._after_change(outcome)
                return outcome.state.row, 0
            existing = await self._store.find_direct(caller.user_id, other)  # lost the race
            if existing is None:
                raise Aborted("the conversation is being created; retry",
                              reason="CONCURRENT_CREATE")
        got = await self._store.get_conversation(existing.id, caller.user_id)
        assert got is not None
        return got

    async def get_group_conversation(self, caller: Principal,
                                     group_id: str) -> tuple[ConversationRow, int]:
        return await self.get_conversation(caller, group_id)

    async def get_conversation(self, caller: Principal,
                               conversation_id: str) -> tuple[ConversationRow, int]:
        await self._member_state(caller, conversation_id)
        got = await self._store.get_conversation(conversation_id, caller.user_id)
        if got is None:
            raise _not_member()
        return got

    async def list_conversations(self, caller: Principal, page_size: int,
                                 page_token: str) -> Page:
        limit = paging.page_size(page_size)
        request = cursors.request_digest("conversations", caller.user_id)
        after = None
        if page_token:
            position = cursors.decode_page_token(page_token, request)
            try:
                after = (float(position[0]), str(position[1]))
            except (IndexError, TypeError, ValueError):
                raise InvalidArgument("page_token is not valid for this request",
                                      reason="INVALID_PAGE_TOKEN") from None
        rows = await self._store.list_conversations(caller.user_id, after, limit + 1)
        token = ""
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1][0]
            token = cursors.encode_page_token(request, [last.last_activity_time, last.id])
        return Page(rows, token)

    async def update_message_ttl(self, caller: Principal, conversation_id: str,
                                 ttl_s: float | None, etag: str,
                                 paths: Sequence[str]) -> tuple[ConversationRow, int]:
        unknown = [p for p in paths if p not in UPDATABLE_CONVERSATION_FIELDS]
        if unknown:
            raise InvalidArgument(
                f"only message_ttl can be updated, not {', '.join(unknown)}",
                field_violations=[("update_mask", f"{p!r} cannot be updated") for p in unknown],
                reason="FIELD_NOT_UPDATABLE")
        for _ in range(STALE_RETRIES):
            state = await self._member_state(caller, conversation_id, fresh=True)
            row = state.row
            if row.type is ConversationType.GROUP and not state.members[caller.user_id].admin:
                raise PermissionDenied("only the group's owners and admins change its settings",
                                       reason="NOT_AN_ADMIN")
            if row.closed:
                raise FailedPrecondition("this conversation is closed",
                                         reason="CONVERSATION_CLOSED")
            if etag and etag != views.etag(row):
                raise Aborted("the conversation changed since you read it (etag mismatch)",
                              reason="ETAG_MISMATCH")
            if ttl_s == row.message_ttl_s:
                break
            devices = await self._devices.devices(state.members)
            step = self._system_step(StepKind.SETTINGS, pb.SystemEvent.TYPE_MESSAGE_TTL_CHANGED,
                                     caller.user_id, (), devices, audience=state.members,
                                     message_ttl_s=ttl_s)
            outcome = await self._store.change_conversation(ConversationWrite(
                conversation_id=row.id, expected_version=row.version, steps=[step],
                now=self._clock(), message_ttl_s=ttl_s))
            if isinstance(outcome, Changed):
                await self._after_change(outcome)
                break
            self._conversations.forget(conversation_id)
        else:
            raise Aborted("the conversation kept changing; retry", reason="CONCURRENT_CHANGE")
        got = await self._store.get_conversation(conversation_id, caller.user_id)
        assert got is not None
        return got

    async def apply_group_change(self, group_id: str, change_id: str, actor: str,
                                 added: Sequence[str], removed: Sequence[str],
                                 group_deleted: bool,
                                 admins: Sequence[str]) -> tuple[str, int]:
        """For the group service: the group's conversation (id = the group's id) follows the
        change; replays of `change_id` return what the first application returned."""
        for _ in range(STALE_RETRIES):
            recorded = await self._store.group_change(change_id)
            if recorded is not None:
                return recorded
            state = await self._store.load_conversation(group_id)
            if state is not None and state.row.type is not ConversationType.GROUP:
                raise FailedPrecondition("that id belongs to a direct conversation",
                                         reason="NOT_A_GROUP_CONVERSATION")
            members = set(state.members) if state is not None else set()
            removing = [u for u in dict.fromkeys(removed) if u in members and u not in added]
            adding = [u for u in dict.fromkeys(added) if u not in members]
            after = (members - set(removing)) | set(adding)
            devices = await self._devices.devices(members | set(adding))
            steps: list[SystemStep] = []
            closed = state is not None and state.row.closed
            if state is None:
                steps.append(self._system_step(
                    StepKind.CREATE, pb.SystemEvent.TYPE_CONVERSATION_CREATED, actor, adding,
                    devices))
            elif closed:
                if adding or removing:
                    raise FailedPrecondition("the group's conversation is closed",
                                             reason="CONVERSATION_CLOSED")
            elif adding:
                steps.append(self._system_step(
                    StepKind.ADD, pb.SystemEvent.TYPE_MEMBERS_ADDED, actor, adding, devices,
                    audience=after))
            if removing:
                # The removed users hear it too: it is the last entry they get.
                steps.append(self._system_step(
                    StepKind.REMOVE, pb.SystemEvent.TYPE_MEMBERS_REMOVED, actor, removing,
                    devices, audience=after | set(removing)))
            if group_deleted and not closed:
                steps.append(self._system_step(
                    StepKind.CLOSE, pb.SystemEvent.TYPE_CONVERSATION_CLOSED, actor, (),
                    devices, audience=after))
            outcome = await self._store.change_conversation(ConversationWrite(
                conversation_id=group_id,
                expected_version=0 if state is None else state.row.version, steps=steps,
                now=self._clock(), change_id=change_id, type=ConversationType.GROUP,
                admins=frozenset(admins)))
            if isinstance(outcome, Changed):
                if not outcome.replayed:
                    await self._after_change(outcome)
                return group_id, outcome.sequence
            self._conversations.forget(group_id)
        raise Aborted("the conversation kept changing; retry", reason="CONCURRENT_CHANGE")

    async def check_membership(self, conversation_id: str,
                               user_id: str) -> tuple[bool, ConversationType | None, str]:
        state = await self._conversations.get(conversation_id)
        if state is None:
            return False, None, ""
        member = user_id in state.members and not state.row.closed
        return member, state.row.type, state.row.group_id

    async def conversation_peers(self, user_id: str, candidates: Sequence[str]) -> list[str]:
        found = await self._store.conversation_peers(user_id, candidates)
        return [c for c in candidates if c in found]

    # -- messages ------------------------------------------------------------------------

    async def send(self, caller: Principal, conversation_id: str, message_id: str,
                   envelopes: Sequence[EnvelopeIn] | None,
                   sender_key: bytes | None) -> MessageRow:
        message_id = message_id.lower()
        await enforce(self._limiter, f"msg:send:{caller.device_id}", self._send_rate,
                      "messages sent")
        pairwise = envelopes is not None
        size = sum(len(e.ciphertext) for e in envelopes) if pairwise else len(sender_key or b"")
        if size > self._settings.max_send_bytes:
            raise InvalidArgument(
                f"the message carries {size} ciphertext bytes; at most "
                f"{self._settings.max_send_bytes} are allowed per send",
                field_violations=[("pairwise" if pairwise else "sender_key",
                                   "too many ciphertext bytes")],
                reason="MESSAGE_TOO_LARGE")
        if pairwise:
            parsed = [(names.parse_device(e.recipient_device,
                                          f"pairwise.envelopes[{i}].recipient_device"), e)
                      for i, e in enumerate(envelopes)]
            rows = [EnvelopeRow(user, device, e.type, e.ciphertext,
                                hashing.digest(e.recipient_device, e.type,
                                               e.ciphertext).ciphertext_sha256)
                    for (user, device), e in parsed]
            content_hash = hashing.pairwise_content_hash(
                hashing.EnvelopeDigest(e.recipient_device, e.type, r.ciphertext_sha256)
                for e, r in zip(envelopes, rows, strict=True))
            kind = MessageKind.PAIRWISE
        else:
            rows = []
            content_hash = hashing.sender_key_content_hash(sender_key or b"")
            kind = MessageKind.SENDER_KEY
        new = NewMessage(id=message_id, conversation_id=conversation_id, kind=kind,
                         sender_user=caller.user_id, sender_device=caller.device_id,
                         content_hash=content_hash, envelopes=rows,
                         sender_key_ciphertext=None if pairwise else sender_key,
                         ciphertext_bytes=size)
        fresh = False
        for _ in range(STALE_RETRIES):
            try:
                state = await self._member_state(caller, conversation_id, fresh=fresh)
                if state.row.closed:
                    raise FailedPrecondition("this conversation is closed; nothing more can "
                                             "be sent", reason="CONVERSATION_CLOSED")
                if pairwise:
                    deliveries = await self._check_envelopes(caller, state, rows)
                else:
                    if state.row.type is not ConversationType.GROUP:
                        raise InvalidArgument(
                            "sender-key content is for group conversations only",
                            field_violations=[("sender_key", "use pairwise envelopes in a "
                                               "direct conversation")],
                            reason="SENDER_KEY_NOT_ALLOWED")
                    deliveries = await self._member_devices(state, exclude=caller.device_id)
            except ZynkError:
                # A retry of a message that was stored stays a success, whatever changed.
                existing = await self._store.get_message(message_id)
                if existing is not None:
                    return self._same_message(existing, new)
                raise
            outcome = await self._store.append_message(
                new, expected_version=state.row.version, deliveries=deliveries,
                now=self._clock(),
                events=functools.partial(_sent_events, state.row.type))
            if isinstance(outcome, Existing):
                return self._same_message(outcome.row, new)
            if isinstance(outcome, Appended):
                by_device = {r.device_id: r for r in rows}
                now = self._clock()
                await self._publisher.publish(
                    (q.entry.device_id, q.seq, pb.SubscribeResponse(
                        cursor=cursors.encode_cursor(q.entry.device_id, q.seq),
                        message=views.message(outcome.row, now,
                                              envelope=by_device.get(q.entry.device_id))))
                    for q in outcome.queued)
                return outcome.row
            fresh = True  # Stale: the conversation changed under us
        raise Aborted("the conversation kept changing; retry", reason="CONCURRENT_CHANGE")

    async def get_message(self, caller: Principal, conversation_id: str,
                          message_id: str) -> MessageView:
        state = await self._member_state(caller, conversation_id)
        row = await self._store.get_message(message_id)
        if row is None or row.conversation_id != conversation_id:
            raise NotFound("message not found", reason="MESSAGE_NOT_FOUND")
        if row.erased(self._clock()) or row.kind is MessageKind.SYSTEM:
            return MessageView(row)
        envelopes = await self._store.get_envelopes(conversation_id, row.sequence, None)
        own = next((e for e in envelopes if e.device_id == caller.device_id), None)
        digests = hashing.ordered(
            hashing.EnvelopeDigest(names.device_name(e.user_id, e.device_id), e.type,
                                   e.ciphertext_sha256) for e in envelopes)
        return MessageView(row, own, self._sender_key_visible(state, caller, row), digests)

    async def list_messages(self, caller: Principal, conversation_id: str, page_size: int,
                            page_token: str, min_sequence: int, max_sequence: int,
                            order_by: str) -> Page:
        state = await self._member_state(caller, conversation_id)
        limit = paging.page_size(page_size)
        descending = order_by.strip() != "sequence"
        if max_sequence and max_sequence < min_sequence:
            raise InvalidArgument("max_sequence must be 0 or at least min_sequence",
                                  field_violations=[("max_sequence", "below min_sequence")])
        low, high = max(min_sequence, 1), max_sequence or 2**62
        request = cursors.request_digest("messages", conversation_id, caller.device_id,
                                         min_sequence, max_sequence, descending)
        if page_token:
            position = cursors.decode_page_token(page_token, request)
            if len(position) != 1 or not isinstance(position[0], int):
                raise InvalidArgument("page_token is not valid for this request",
                                      reason="INVALID_PAGE_TOKEN")
            if descending:
                high = min(high, position[0] - 1)
            else:
                low = max(low, position[0] + 1)
        rows = []
        if low <= high:
            rows = await self._store.list_messages(
                conversation_id, caller.device_id, min_sequence=low, max_sequence=high,
                descending=descending, limit=limit + 1)
        token = ""
        if len(rows) > limit:
            rows = rows[:limit]
            token = cursors.encode_page_token(request, [rows[-1][0].sequence])
        return Page([MessageView(row, env, self._sender_key_visible(state, caller, row))
                     for row, env in rows], token)

    async def delete_message(self, caller: Principal, conversation_id: str,
                             message_id: str) -> MessageRow:
        await self._own_message(caller, conversation_id, message_id,
                                "only the sender can delete a message")
        deleted = await self._store.delete_message(message_id, self._clock())
        assert deleted is not None
        log.info("message deleted", conversation_id=conversation_id, message_id=message_id)
        return deleted

    async def mark_read(self, caller: Principal, conversation_id: str, read_sequence: int,
                        suppress_receipts: bool) -> int:
        await self._member_state(caller, conversation_id)
        now = self._clock()
        conversation = names.conversation_name(conversation_id)

        def plan(old: int, new: int, senders: Sequence[str], devices_of: DevicesOf) -> Fanout:
            entries: list[NewEntry] = []
            state = pb.ReadStateEvent(conversation=conversation,
                                      read_sequence=new).SerializeToString()
            for device in devices_of(caller.user_id):
                if device != caller.device_id:
                    entries.append(NewEntry(caller.user_id, device, EntryKind.READ_STATE,
                                            conversation_id, payload=state))
            if not suppress_receipts:
                receipt = pb.ReceiptEvent(
                    type=pb.RECEIPT_TYPE_READ, conversation=conversation,
                    user=caller.user_name, read_sequence=new,
                    event_time=timestamp(now)).SerializeToString()
                for sender in senders:
                    entries += [NewEntry(sender, d, EntryKind.RECEIPT, conversation_id,
                                         payload=receipt) for d in devices_of(sender)]
            return Fanout(entries, [events.message_read(conversation_id, caller.user_id, new,
                                                        suppress_receipts, now)])

        outcome = await self._store.mark_read(conversation_id, caller.user_id, read_sequence,
                                              now, not suppress_receipts, plan)
        if isinstance(outcome, NotMember):
            raise _not_member()
        if isinstance(outcome, SequenceAhead):
            raise InvalidArgument(
                f"read_sequence is beyond the conversation's last entry "
                f"({outcome.last_sequence})",
                field_violations=[("read_sequence", "beyond the last sequence")],
                reason="SEQUENCE_AHEAD")
        assert isinstance(outcome, ReadMarked)
        await self._publish_queued(outcome.queued)
        return outcome.read_sequence

    async def list_receipts(self, caller: Principal, conversation_id: str, message_id: str,
                            page_size: int, page_token: str) -> Page:
        row = await self._own_message(caller, conversation_id, message_id,
                                      "only the sender sees a message's receipts")
        limit = paging.page_size(page_size)
        request = cursors.request_digest("receipts", message_id, caller.user_id)
        after = ""
        if page_token:
            position = cursors.decode_page_token(page_token, request)
            if len(position) != 1 or not isinstance(position[0], str):
                raise InvalidArgument("page_token is not valid for this request",
                                      reason="INVALID_PAGE_TOKEN")
            after = position[0]
        rows: list[ReceiptRow] = await self._store.list_receipts(conversation_id, row.sequence,
                                                                 after, limit + 1)
        token = ""
        if len(rows) > limit:
            rows = rows[:limit]
            token = cursors.encode_page_token(request, [rows[-1].user_id])
        return Page(rows, token)

    # -- inbox ---------------------------------------------------------------------------

    def subscribe(self, caller: Principal, device_ref: tuple[str, str], after_cursor: str):
        """The calling device's inbox stream (an async iterator of SubscribeResponse)."""
        self._own_device(caller, device_ref, "device")
        after = (cursors.decode_cursor(caller.device_id, after_cursor, "after_cursor")
                 if after_cursor else 0)
        return self._streams.stream(caller.user_id, caller.device_id, after)

    async def acknowledge(self, caller: Principal, device_ref: tuple[str, str],
                          cursor: str) -> int:
        self._own_device(caller, device_ref, "device")
        up_to = cursors.decode_cursor(caller.device_id, cursor)
        now = self._clock()
        recipient = caller.user_id

        def plan(delivered: Sequence[Delivered], devices_of: DevicesOf) -> Fanout:
            by_sender: dict[tuple[str, str], list[str]] = {}
            for d in delivered:
                by_sender.setdefault((d.sender_user, d.conversation_id), []).append(
                    d.message_id)
            entries: list[NewEntry] = []
            for (sender, conversation_id), ids in by_sender.items():
                targets = devices_of(sender)
                for i in range(0, len(ids), MAX_RECEIPT_MESSAGES):
                    payload = pb.ReceiptEvent(
                        type=pb.RECEIPT_TYPE_DELIVERED,
                        conversation=names.conversation_name(conversation_id),
                        user=names.user_name(recipient),
                        messages=[names.message_name(conversation_id, m)
                                  for m in ids[i:i + MAX_RECEIPT_MESSAGES]],
                        event_time=timestamp(now)).SerializeToString()
                    entries += [NewEntry(sender, device, EntryKind.RECEIPT, conversation_id,
                                         payload=payload) for device in targets]
            return Fanout(entries, [
                events.message_delivered(d.conversation_id, d.message_id, d.sender_user,
                                         recipient, caller.device_id, now)
                for d in delivered])

        outcome = await self._store.acknowledge(caller.user_id, caller.device_id, up_to, now,
                                                plan)
        if isinstance(outcome, CursorAhead):
            raise InvalidArgument("cursor is ahead of this inbox",
                                  field_violations=[("cursor", "not a cursor this device "
                                                     "received")],
                                  reason="INVALID_CURSOR")
        assert isinstance(outcome, Acknowledged)
        await self._publish_queued(outcome.queued)
        return outcome.pending

    # -- events and housekeeping -----------------------------------------------------------

    async def device_changed(self, user_id: str, device_id: str, revoked: bool) -> None:
        """devices.changed: forget the cached list; a revoked device's inbox is dropped and
        its stream told to end. Idempotent (the bus delivers at least once)."""
        await self._devices.drop(user_id)
        if revoked:
            dropped = await self._store.forget_device(user_id, device_id)
            await self._publisher.revoked(device_id)
            log.info("device inbox dropped", device_id=device_id, entries=dropped)

    async def expire_due(self) -> int:
        """Erase the ciphertext of messages whose expire_time passed; returns how many."""
        total = 0
        while True:
            n = await self._store.expire_due(self._clock(), EXPIRY_BATCH)
            total += n
            if n < EXPIRY_BATCH:
                return total

    # -- helpers -------------------------------------------------------------------------

    async def _member_state(self, caller: Principal, conversation_id: str, *,
                            fresh: bool = False) -> ConversationState:
        state = await self._conversations.get(conversation_id, fresh=fresh)
        if state is None or caller.user_id not in state.members:
            raise _not_member()
        return state

    async def _own_message(self, caller: Principal, conversation_id: str, message_id: str,
                           denied: str) -> MessageRow:
        """A message the caller sent in a conversation they are a member of; PermissionDenied
        with `denied` for anyone else's (or a system message)."""
        await self._member_state(caller, conversation_id)
        row = await self._store.get_message(message_id)
        if row is None or row.conversation_id != conversation_id:
            raise NotFound("message not found", reason="MESSAGE_NOT_FOUND")
        if row.kind is MessageKind.SYSTEM or row.sender_user != caller.user_id:
            raise PermissionDenied(denied, reason="NOT_THE_SENDER")
        return row

    @staticmethod
    def _own_device(caller: Principal, device_ref: tuple[str, str], field: str) -> None:
        user_ref, device_id = device_ref
        if _user_ref(caller, user_ref) != caller.user_id or device_id != caller.device_id:
            raise PermissionDenied(f"{field} must be the calling device",
                                   reason="NOT_CALLING_DEVICE")

    @staticmethod
    def _sender_key_visible(state: ConversationState, caller: Principal,
                            row: MessageRow) -> bool:
        """Group ciphertext sent before the caller joined is not theirs to fetch."""
        member = state.members.get(caller.user_id)
        return member is not None and row.sequence > member.joined_sequence

    async def _check_envelopes(self, caller: Principal, state: ConversationState,
                               rows: Sequence[EnvelopeRow]) -> list[Recipient]:
        got = {(r.user_id, r.device_id) for r in rows}
        expected = await self._expected_devices(caller, state, fresh=False)
        if got != expected:
            # Maybe our cached lists are stale (a device just logged in or was revoked).
            expected = await self._expected_devices(caller, state, fresh=True)
            if got != expected:
                def named(pairs):
                    return {names.device_name(u, d) for u, d in pairs}
                raise DeviceMismatch(named(expected - got), named(got - expected))
        return [Recipient(r.user_id, r.device_id) for r in rows]

    async def _expected_devices(self, caller: Principal, state: ConversationState, *,
                                fresh: bool) -> set[tuple[str, str]]:
        devices = await self._devices.devices(state.members, fresh=fresh)
        return {(u, d) for u, ds in devices.items() for d in ds} - {
            (caller.user_id, caller.device_id)}

    async def _member_devices(self, state: ConversationState, *,
                              exclude: str = "") -> list[Recipient]:
        devices = await self._devices.devices(state.members)
        return [Recipient(u, d) for u, ds in devices.items() for d in ds if d != exclude]

    def _system_step(self, kind: StepKind, event_type: int, actor: str, users: Sequence[str],
                     devices: dict[str, tuple[str, ...]], *, audience=None,
                     message_ttl_s: float | None = None) -> SystemStep:
        event = pb.SystemEvent(type=event_type, actor=names.user_name(actor),
                               users=[names.user_name(u) for u in users],
                               message_ttl=duration(message_ttl_s))
        audience = users if audience is None else audience
        deliveries = [Recipient(u, d) for u in sorted(audience) for d in devices.get(u, ())]
        return SystemStep(kind, new_id(), event.SerializeToString(), list(users),
                          deliveries)

    @staticmethod
    def _same_message(existing: MessageRow, new: NewMessage) -> MessageRow:
        if (existing.conversation_id == new.conversation_id
                and existing.sender_user == new.sender_user
                and existing.sender_device == new.sender_device
                and existing.kind is new.kind and existing.content_hash == new.content_hash):
            return existing
        raise AlreadyExists("this message id is already used for other content; generate a "
                            "new id for a new message", reason="MESSAGE_ID_REUSED")

    async def _after_change(self, outcome: Changed) -> None:
        await self._conversations.changed(outcome.state)
        await self._publish_queued(outcome.queued)

    async def _publish_queued(self, queued: Sequence[QueuedEntry]) -> None:
        """Live wake-ups for committed entries rendered without a store read where the entry
        carries everything (receipts, read positions); conversation entries are read back in
        one query per batch."""
        if not queued:
            return
        now = self._clock()
        out = []
        messages: dict[str, MessageRow | None] = {}
        for q in queued:
            e = q.entry
            cursor = cursors.encode_cursor(e.device_id, q.seq)
            if e.kind is EntryKind.RECEIPT:
                resp = pb.SubscribeResponse(cursor=cursor,
                                            receipt=pb.ReceiptEvent.FromString(e.payload))
            elif e.kind is EntryKind.READ_STATE:
                resp = pb.SubscribeResponse(cursor=cursor,
                                            read_state=pb.ReadStateEvent.FromString(e.payload))
            else:
                if e.message_id not in messages:
                    messages[e.message_id] = await self._store.get_message(e.message_id)
                row = messages[e.message_id]
                if row is None:
                    continue  # the stream's store read will find it
                resp = pb.SubscribeResponse(cursor=cursor, message=views.message(row, now))
            out.append((e.device_id, q.seq, resp))
        await self._publisher.publish(out)


async def run_sweeper(domain: MessagingDomain, interval_s: float, stop: asyncio.Event) -> None:
    """Erase expired messages every `interval_s` until `stop` is set."""
    while not stop.is_set():
        try:
            n = await domain.expire_due()
            if n:
                log.info("expired messages erased", count=n)
        except Unavailable as e:  # the database is down or restarting: expected, no trace
            log.warning("expiry sweep waiting for the store", error=str(e))
        except Exception:
            log.exception("expiry sweep failed; will retry")
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except TimeoutError:
            pass
