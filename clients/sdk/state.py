"""Everything a profile remembers between runs, as one JSON document inside the encrypted
state file (store.py): account and device, tokens, the crypto engine (identity keys,
sessions, sender keys), the inbox position, seen message names, the send outbox, caches of
names, and a bounded local history for display and for applying edits and reactions.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from typing import Any

from clients.sdk.crypto.engine import DeviceCrypto

STATE_VERSION = 1
MAX_SEEN = 20_000
MAX_HISTORY = 2_000
MAX_PENDING_GROUP = 500


@dataclasses.dataclass
class Tokens:
    access_token: str
    access_expire: float
    refresh_token: str
    refresh_expire: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Tokens:
        return cls(str(d["access_token"]), float(d["access_expire"]),
                   str(d["refresh_token"]), float(d["refresh_expire"]))


@dataclasses.dataclass
class OutboxEntry:
    """A message accepted for sending but not yet acknowledged by the server.

    Kept in the state (so encrypted at rest) before the first attempt, with the ratchet
    already advanced: a crash or a timeout is followed by a retry with the same message id
    and the same ciphertexts, never a second encryption under a reused message key."""

    message_id: str
    conversation: str
    kind: str  # "pairwise" | "sender_key"
    payload: bytes  # pairwise: the padded plaintext; sender_key: the group ciphertext
    participants: list[str]  # pairwise: users whose devices must all get an envelope
    envelopes: dict[str, tuple[bool, bytes]] = dataclasses.field(default_factory=dict)
    created: float = dataclasses.field(default_factory=time.time)
    # What this send does besides delivering, e.g. "sender_key" (a distribution).
    purpose: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "conversation": self.conversation,
                "kind": self.kind, "payload": self.payload.hex(),
                "participants": self.participants,
                "envelopes": {d: [p, c.hex()] for d, (p, c) in self.envelopes.items()},
                "created": self.created, "purpose": self.purpose}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> OutboxEntry:
        return cls(d["message_id"], d["conversation"], d["kind"], bytes.fromhex(d["payload"]),
                   list(d["participants"]),
                   {dev: (bool(p), bytes.fromhex(c)) for dev, (p, c) in d["envelopes"].items()},
                   float(d["created"]), d.get("purpose", ""))


@dataclasses.dataclass
class ProfileState:
    server: str
    user: str
    username: str
    device: str
    device_display_name: str
    tokens: Tokens
    crypto: DeviceCrypto
    keys_published: bool = False
    cursor: str = ""
    seen: OrderedDict[str, None] = dataclasses.field(default_factory=OrderedDict)
    outbox: list[OutboxEntry] = dataclasses.field(default_factory=list)
    usernames: dict[str, str] = dataclasses.field(default_factory=dict)  # user -> username
    directs: dict[str, str] = dataclasses.field(default_factory=dict)  # user -> conversation
    # conversation -> {"type": "direct"|"group", "peer"?: user, "group"?: name, "title": str}
    conversations: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # Group messages waiting for a sender key (retried when one arrives).
    pending_group: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # Claimed but not yet used key bundles, device -> PeerBundle JSON + "claimed" time: a
    # claimed one-time prekey is nobody else's, so it is kept for the first message.
    bundles: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    # -- seen message names ----------------------------------------------------------------

    def seen_before(self, name: str) -> bool:
        return name in self.seen

    def mark_seen(self, name: str) -> None:
        self.seen[name] = None
        self.seen.move_to_end(name)
        while len(self.seen) > MAX_SEEN:
            self.seen.popitem(last=False)

    # -- history ---------------------------------------------------------------------------

    def add_history(self, item: dict[str, Any]) -> None:
        self.history.append(item)
        del self.history[:-MAX_HISTORY]

    def find_history(self, conversation: str, message_id: str) -> dict[str, Any] | None:
        name = f"{conversation}/messages/{message_id}"
        for item in reversed(self.history):
            if item["name"] == name:
                return item
        return None

    def add_pending_group(self, item: dict[str, Any]) -> None:
        self.pending_group.append(item)
        del self.pending_group[:-MAX_PENDING_GROUP]

    # -- persistence -----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION, "server": self.server, "user": self.user,
            "username": self.username, "device": self.device,
            "device_display_name": self.device_display_name, "tokens": self.tokens.to_json(),
            "crypto": self.crypto.to_json(), "keys_published": self.keys_published,
            "cursor": self.cursor, "seen": list(self.seen),
            "outbox": [e.to_json() for e in self.outbox], "usernames": self.usernames,
            "directs": self.directs, "conversations": self.conversations,
            "history": self.history, "pending_group": self.pending_group,
            "bundles": self.bundles,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ProfileState:
        if d.get("version") != STATE_VERSION:
            from clients.sdk.errors import StateCorrupted

            raise StateCorrupted(f"state format {d.get('version')!r} is not supported by "
                                 "this client")
        return cls(
            server=d["server"], user=d["user"], username=d["username"], device=d["device"],
            device_display_name=d["device_display_name"],
            tokens=Tokens.from_json(d["tokens"]), crypto=DeviceCrypto.from_json(d["crypto"]),
            keys_published=bool(d["keys_published"]), cursor=d["cursor"],
            seen=OrderedDict((n, None) for n in d["seen"]),
            outbox=[OutboxEntry.from_json(e) for e in d["outbox"]],
            usernames=dict(d["usernames"]), directs=dict(d["directs"]),
            conversations=dict(d["conversations"]), history=list(d["history"]),
            pending_group=list(d.get("pending_group", [])),
            bundles=dict(d.get("bundles", {})),
        )
