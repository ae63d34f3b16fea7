"""The storage interface the messaging domain depends on, and the rows it exchanges.

Writes are whole operations (append a message, acknowledge an inbox, apply a membership
change...), each atomic: it commits entirely or not at all, together with its inbox entries
and its outbox events. Where an operation needs a rule applied to what it finds inside the
transaction (which receipts an acknowledgement produces, who hears about a read position),
the domain passes a *planner*: a pure function the adapter calls inside the transaction.

Concurrency is optimistic: a write that depends on a conversation's members or settings names
the `version` it was decided on and comes back `Stale` if the conversation changed since (the
domain re-reads and decides again). Sequences are allocated inside the transaction that
commits the entry, so they are gapless and in commit order:
- a conversation's `sequence`: `last_sequence + 1` on the conversation row;
- a device inbox's `seq`: `last_seq + 1` on the inbox row. (PostgreSQL: bumped with
  `... RETURNING` under those rows' locks, held until commit, so the next writer can only
  allocate after this one committed; see postgres.py. Never a sequence/serial, whose values
  are handed out in call order, not commit order, and are lost on rollback.)

Ids: users, devices, conversations and messages are UUID strings (no `users/` prefixes).
Times are wall-clock epoch seconds (float)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from google.protobuf.message import Message


# One MarkRead looks at no more than the newest this-many entries of the range it newly
# covers (read times, READ receipt senders): a client jumping over a huge backlog must not
# stall the writer. Older entries of such a jump get no read time.
READ_SPAN = 1000


class ConversationType(enum.IntEnum):
    DIRECT = 1
    GROUP = 2


class MessageKind(enum.IntEnum):
    PAIRWISE = 1
    SENDER_KEY = 2
    SYSTEM = 3


class EntryKind(enum.IntEnum):
    MESSAGE = 1  # a conversation entry (message or SystemEvent), rendered from the message
    RECEIPT = 2  # payload: serialized ReceiptEvent
    READ_STATE = 3  # payload: serialized ReadStateEvent


class StepKind(enum.IntEnum):
    """What a SystemEvent entry of a membership change does to the member list."""

    CREATE = 1  # creates the conversation; `users` become members
    ADD = 2
    REMOVE = 3
    CLOSE = 4
    SETTINGS = 5  # message_ttl changed (ConversationWrite.message_ttl_s)


@dataclasses.dataclass(frozen=True, slots=True)
class Member:
    user_id: str
    # Sequence of the entry that made the user a member: later group entries are theirs.
    joined_sequence: int
    admin: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class ConversationRow:
    id: str
    type: ConversationType
    group_id: str  # GROUP: the backing group's id (equal to `id`); DIRECT: ""
    direct_users: tuple[str, ...]  # DIRECT: both user ids, sorted; GROUP: ()
    message_ttl_s: float | None
    create_time: float
    update_time: float
    last_sequence: int
    last_activity_time: float
    closed: bool
    version: int  # bumped by every change of members, roles, settings or state
    settings_version: int  # bumped by settings changes only: the etag


@dataclasses.dataclass(frozen=True, slots=True)
class ConversationState:
    row: ConversationRow
    members: Mapping[str, Member]  # current members by user id


@dataclasses.dataclass(frozen=True, slots=True)
class EnvelopeRow:
    user_id: str
    device_id: str
    type: int  # EnvelopeType
    ciphertext: bytes
    ciphertext_sha256: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class MessageRow:
    id: str
    conversation_id: str
    sequence: int
    kind: MessageKind
    sender_user: str  # "" for SystemEvents
    sender_device: str  # device id; "" for SystemEvents
    create_time: float
    expire_time: float | None
    delete_time: float | None  # set on a tombstone (deleted or swept after expiry)
    content_hash: bytes  # b"" for SystemEvents
    sender_key_ciphertext: bytes | None  # SENDER_KEY, until erased
    system_event: bytes | None  # SYSTEM: serialized SystemEvent
    envelope_count: int
    ciphertext_bytes: int

    def erased(self, now: float) -> bool:
        """A tombstone: deleted, or past its expiry even if the sweeper has not run yet."""
        return self.delete_time is not None or (
            self.expire_time is not None and self.expire_time <= now)


@dataclasses.dataclass(frozen=True, slots=True)
class NewMessage:
    id: str
    conversation_id: str
    kind: MessageKind  # PAIRWISE or SENDER_KEY
    sender_user: str
    sender_device: str
    content_hash: bytes
    envelopes: Sequence[EnvelopeRow]  # PAIRWISE
    sender_key_ciphertext: bytes | None  # SENDER_KEY
    ciphertext_bytes: int


@dataclasses.dataclass(frozen=True, slots=True)
class Recipient:
    user_id: str
    device_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class NewEntry:
    """An inbox entry to queue for one device."""

    user_id: str
    device_id: str
    kind: EntryKind
    conversation_id: str
    message_id: str = ""  # MESSAGE
    message_seq: int = 0  # MESSAGE: its sequence (filled in by the store when it allocates it)
    sender_user: str = ""  # MESSAGE from a user (receipts go back to them)
    payload: bytes = b""  # RECEIPT / READ_STATE


@dataclasses.dataclass(frozen=True, slots=True)
class QueuedEntry:
    """An entry as committed: its place in the device's inbox."""

    seq: int
    entry: NewEntry


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxEvent:
    topic: str
    key: str
    payload: Message  # an EventEnvelope
    event_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Fanout:
    entries: Sequence[NewEntry] = ()
    events: Sequence[OutboxEvent] = ()


# Inside a transaction: the devices of a user that have an inbox and are not revoked.
# Planners ask only about the users named below (an AckPlanner: the senders of the
# delivered messages; a ReadPlanner: the reader and the senders it is given): the
# PostgreSQL adapter reads exactly those before calling the planner (it cannot query from
# a synchronous callback) and raises LookupError for anyone else.
DevicesOf = Callable[[str], Sequence[str]]


@dataclasses.dataclass(frozen=True, slots=True)
class Delivered:
    """A message a device acknowledged that reached the acknowledging user for the first time."""

    message_id: str
    conversation_id: str
    sequence: int
    sender_user: str


# (newly delivered messages, devices_of) -> entries and events to add in the same transaction
AckPlanner = Callable[[Sequence[Delivered], DevicesOf], Fanout]
# (old read_sequence, new read_sequence, senders of the newly read entries other than the
#  reader, devices_of) -> entries and events
ReadPlanner = Callable[[int, int, Sequence[str], DevicesOf], Fanout]
# the committed message row -> its outbox events
EventsFor = Callable[[MessageRow], Sequence[OutboxEvent]]


@dataclasses.dataclass(frozen=True, slots=True)
class SystemStep:
    """One SystemEvent entry of a conversation change, and what it does."""

    kind: StepKind
    message_id: str
    system_event: bytes  # serialized SystemEvent
    users: Sequence[str]  # CREATE/ADD: new members; REMOVE: members leaving
    deliveries: Sequence[Recipient]


@dataclasses.dataclass(frozen=True, slots=True)
class ConversationWrite:
    """A change of a conversation's members, roles, settings or state, as a list of
    SystemEvent entries (each at its own sequence) plus a role update.

    expected_version: the version the change was decided on; 0 means the conversation must
    not exist yet (the first step is then CREATE). change_id (group changes): recorded with
    the last sequence, and a replay returns that record without writing anything."""

    conversation_id: str
    expected_version: int
    steps: Sequence[SystemStep]
    now: float
    change_id: str = ""
    # CREATE only
    type: ConversationType = ConversationType.GROUP
    direct_users: tuple[str, ...] = ()
    # The full owner/admin list after the change (None: roles unchanged).
    admins: frozenset[str] | None = None
    # SETTINGS only.
    message_ttl_s: float | None = None


# -- outcomes -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Stale:
    """The conversation changed (or closed, or already exists) since the decision was made."""


@dataclasses.dataclass(frozen=True, slots=True)
class Existing:
    """A message with this id already exists (maybe in another conversation or by another
    sender: the domain compares)."""

    row: MessageRow


@dataclasses.dataclass(frozen=True, slots=True)
class Appended:
    row: MessageRow
    queued: Sequence[QueuedEntry]


@dataclasses.dataclass(frozen=True, slots=True)
class Changed:
    state: ConversationState
    sequence: int  # of the last SystemEvent entry; 0 if the change recorded none
    queued: Sequence[QueuedEntry]
    replayed: bool = False  # change_id seen before: nothing written, `queued` empty


@dataclasses.dataclass(frozen=True, slots=True)
class Acknowledged:
    pending: int  # entries still queued for the device
    queued: Sequence[QueuedEntry]  # receipts queued for senders


@dataclasses.dataclass(frozen=True, slots=True)
class CursorAhead:
    """The cursor names a position the inbox never reached."""

    last_seq: int


@dataclasses.dataclass(frozen=True, slots=True)
class ReadMarked:
    read_sequence: int  # after the call (never lower than before)
    advanced: bool
    queued: Sequence[QueuedEntry]


@dataclasses.dataclass(frozen=True, slots=True)
class NotMember:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class SequenceAhead:
    last_sequence: int


@dataclasses.dataclass(frozen=True, slots=True)
class InboxState:
    user_id: str
    last_seq: int  # highest seq ever queued
    acked_seq: int  # highest seq acknowledged
    pending: int  # entries queued and not acknowledged
    revoked: bool


@dataclasses.dataclass(frozen=True, slots=True)
class InboxItem:
    seq: int
    kind: EntryKind
    conversation_id: str
    payload: bytes
    message: MessageRow | None  # MESSAGE
    envelope: EnvelopeRow | None  # MESSAGE, PAIRWISE: this device's envelope


@dataclasses.dataclass(frozen=True, slots=True)
class ReceiptRow:
    user_id: str
    deliver_time: float | None
    read_time: float | None


class MessageStore(Protocol):
    # -- writes ------------------------------------------------------------------------------

    async def change_conversation(self, change: ConversationWrite) -> Changed | Stale:
        """Apply `change` atomically: allocate a sequence per step, store each SystemEvent
        entry, apply its membership effect (new members join at that step's sequence),
        queue its deliveries, replace admin flags when `admins` is given, bump `version`
        (and `settings_version` for SETTINGS), set `last_activity_time`, and record
        `change_id`. Stale if the version does not match (or, for 0, the conversation
        exists; or a DIRECT conversation of the same two users exists)."""

    async def append_message(self, message: NewMessage, *, expected_version: int,
                             deliveries: Sequence[Recipient], now: float,
                             events: EventsFor) -> Appended | Existing | Stale:
        """Store a client message at the conversation's next sequence, unless its id exists
        (Existing, nothing written) or the conversation's version moved or it is closed
        (Stale). `expire_time` is `now` + the conversation's message_ttl (read in the same
        transaction). Queues one MESSAGE entry per delivery, makes sure the sending device
        has an inbox (so it gets receipts), and adds `events(row)` to the outbox."""

    async def acknowledge(self, user_id: str, device_id: str, up_to: int, now: float,
                          plan: AckPlanner) -> Acknowledged | CursorAhead:
        """Remove the device's entries with seq <= up_to. For each removed MESSAGE entry from
        another user that `user_id` had no delivery recorded for yet, record it (receipt
        deliver_time = now); pass those (in inbox order) to `plan` and queue/add what it
        returns."""

    async def mark_read(self, conversation_id: str, user_id: str, read_sequence: int,
                        now: float, record_read_time: bool,
                        plan: ReadPlanner) -> ReadMarked | NotMember | SequenceAhead:
        """Move the user's read position forward to read_sequence (never back). When it moved:
        record read_time on the user's receipts of the newly read client messages of others
        sent after the user joined (if `record_read_time`; at most the newest READ_SPAN
        entries), and queue/add what `plan` returns."""

    async def delete_message(self, message_id: str, now: float) -> MessageRow | None:
        """Make the message a tombstone (delete_time = now unless already set): its
        ciphertext is erased from history and from every inbox entry still queued (entries
        render from the stored message). Returns the tombstone; None if there is no such
        message."""

    async def expire_due(self, now: float, limit: int) -> int:
        """Erase up to `limit` messages whose expire_time passed (delete_time = expire_time);
        returns how many."""

    async def open_inbox(self, user_id: str, device_id: str) -> InboxState:
        """The device's inbox state, creating an empty inbox on first use."""

    async def forget_device(self, user_id: str, device_id: str) -> int:
        """The device was revoked: drop its queued entries and queue nothing more for it.
        Idempotent; returns how many entries were dropped."""

    # -- reads -------------------------------------------------------------------------------

    async def load_conversation(self, conversation_id: str) -> ConversationState | None: ...

    async def get_conversation(self, conversation_id: str,
                               user_id: str) -> tuple[ConversationRow, int] | None:
        """The conversation and the user's read position (0 if not a member)."""

    async def find_direct(self, user_a: str, user_b: str) -> ConversationRow | None: ...

    async def list_conversations(self, user_id: str, after: tuple[float, str] | None,
                                 limit: int) -> list[tuple[ConversationRow, int]]:
        """The user's conversations with the user's read position, by (last_activity_time,
        id) descending, strictly after `after`."""

    async def get_message(self, message_id: str) -> MessageRow | None: ...

    async def get_envelopes(self, conversation_id: str, sequence: int,
                            device_id: str | None) -> list[EnvelopeRow]:
        """The stored envelopes of the message at (conversation, sequence), only
        `device_id`'s when given."""

    async def list_messages(self, conversation_id: str, device_id: str, *, min_sequence: int,
                            max_sequence: int, descending: bool,
                            limit: int) -> list[tuple[MessageRow, EnvelopeRow | None]]:
        """Entries with min_sequence <= sequence <= max_sequence in sequence order, each with
        `device_id`'s envelope if it has one."""

    async def read_inbox(self, device_id: str, after_seq: int, limit: int) -> list[InboxItem]:
        """Queued entries with seq > after_seq, in seq order."""

    async def inbox_state(self, device_id: str) -> InboxState | None: ...

    async def list_receipts(self, conversation_id: str, sequence: int, after_user: str,
                            limit: int) -> list[ReceiptRow]:
        """Receipts of the message at (conversation, sequence) by user id, strictly after
        `after_user`."""

    async def conversation_peers(self, user_id: str, candidates: Sequence[str]) -> set[str]:
        """Which of `candidates` share an open conversation with `user_id`."""

    async def group_change(self, change_id: str) -> tuple[str, int] | None:
        """(conversation id, sequence) recorded for a group change id."""

    async def close(self) -> None: ...
