"""One device's cryptographic state: its X3DH keys, its pairwise sessions with every peer
device, the identity key first seen for each peer device, and group sender keys.

No I/O here: the engine turns plaintext into per-device ciphertexts and back, given device
names and claimed bundles, so several engines can talk to each other in memory (the unit
tests do exactly that) and the client (clients/sdk/client.py) adds the server around it.

Rules kept here:
- Identity keys are trust-on-first-use per device: the server never lets a device change
  its identity key, so a different key for a known device means the server (or someone
  between) is lying, and the engine refuses it (IdentityKeyChanged).
- Up to MAX_SESSIONS sessions per peer device are kept, newest first. Decryption tries each,
  and the one that works becomes current: this resolves two devices starting sessions with
  each other at the same time, as Signal does.
- Peer sender keys are kept per (conversation, sending device), the last MAX_CHAINS chains,
  so messages sent just before a rotation still decrypt.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from clients.sdk.crypto import pairwise
from clients.sdk.crypto.keys import DeviceKeys, PeerBundle
from clients.sdk.crypto.pairwise import Session, lp
from clients.sdk.crypto.senderkey import Distribution, OwnSenderKey, PeerSenderKey, parse_header
from clients.sdk.errors import (
    IdentityKeyChanged,
    MissingSenderKey,
    PeerHasNoKeys,
    SessionBroken,
)

MAX_SESSIONS = 3
MAX_CHAINS = 3


def message_context(conversation: str, message_id: str, sender_device: str) -> bytes:
    """Associated data binding a ciphertext to where and by whom it was sent."""
    return lp(b"zynk-message-v1", conversation.encode(), message_id.encode(),
              sender_device.encode())


def user_of(device: str) -> str:
    """`users/U/devices/D` -> `users/U`."""
    parts = device.split("/")
    if len(parts) != 4 or parts[0] != "users" or parts[2] != "devices":
        raise ValueError(f"not a device name: {device!r}")
    return "/".join(parts[:2])


@dataclasses.dataclass
class GroupSenderKey:
    """This device's sender key in one group conversation, and to whom it was given."""

    key: OwnSenderKey
    # Users and devices that received this key (a successful pairwise distribution).
    distributed_users: list[str] = dataclasses.field(default_factory=list)
    distributed_devices: list[str] = dataclasses.field(default_factory=list)
    # Set when a membership change was seen: the next send rotates first.
    stale: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key.to_json(), "users": self.distributed_users,
                "devices": self.distributed_devices, "stale": self.stale}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GroupSenderKey:
        return cls(OwnSenderKey.from_json(d["key"]), list(d["users"]), list(d["devices"]),
                   bool(d["stale"]))


class DeviceCrypto:
    def __init__(self, device: str, keys: DeviceKeys) -> None:
        self.device = device
        self.keys = keys
        self.sessions: dict[str, list[Session]] = {}
        self.identities: dict[str, bytes] = {}
        self.group_keys: dict[str, GroupSenderKey] = {}
        self.peer_sender_keys: dict[tuple[str, str], list[PeerSenderKey]] = {}

    @classmethod
    def create(cls, device: str) -> DeviceCrypto:
        user_of(device)
        return cls(device, DeviceKeys.generate())

    @property
    def user(self) -> str:
        return user_of(self.device)

    @property
    def identity_key(self) -> bytes:
        return self.keys.identity_key

    # -- peers -----------------------------------------------------------------------------

    def known_devices(self, user: str) -> list[str]:
        """Peer devices of `user` this device has a session with."""
        prefix = user + "/devices/"
        return sorted(d for d in self.sessions if d.startswith(prefix))

    def has_session(self, device: str) -> bool:
        return bool(self.sessions.get(device))

    def identities_of(self, user: str) -> dict[str, bytes]:
        prefix = user + "/devices/"
        out = {d: k for d, k in self.identities.items() if d.startswith(prefix)}
        if user == self.user:
            out[self.device] = self.identity_key
        return out

    def forget_device(self, device: str) -> None:
        """Drop sessions with a device that is gone (revoked). Its identity is remembered, so
        it cannot come back with another key."""
        self.sessions.pop(device, None)

    def _check_identity(self, device: str, identity: bytes) -> None:
        known = self.identities.get(device)
        if known is not None and known != identity:
            raise IdentityKeyChanged(
                f"device {device} now presents a different identity key than before; "
                "refusing it (the server or the network may be attacking this conversation)")

    def _remember(self, session: Session) -> None:
        self.identities[session.peer_device] = session.peer_identity
        lst = self.sessions.setdefault(session.peer_device, [])
        lst.insert(0, session)
        del lst[MAX_SESSIONS:]

    # -- pairwise --------------------------------------------------------------------------

    async def encrypt_for(self, plaintext: bytes, context: bytes, devices: Iterable[str],
                          bundles: Mapping[str, PeerBundle] | None = None,
                          ) -> dict[str, tuple[bool, bytes]]:
        """Encrypt to each device: with its current session, else a new one from its bundle.
        -> {device: (is_prekey, ciphertext)}."""
        bundles = bundles or {}
        out: dict[str, tuple[bool, bytes]] = {}
        for device in devices:
            if device == self.device:
                continue
            current = self.sessions.get(device)
            if current:
                out[device] = await current[0].encrypt(plaintext, context)
                continue
            bundle = bundles.get(device)
            if bundle is None:
                raise PeerHasNoKeys(f"no session with {device} and no key bundle for it")
            self._check_identity(device, bundle.identity_key)
            session, ciphertext = await pairwise.initiate(self.keys, self.device, bundle,
                                                          plaintext, context)
            self._remember(session)
            out[device] = (True, ciphertext)
        return out

    async def decrypt_from(self, sender_device: str, is_prekey: bool, ciphertext: bytes,
                           context: bytes) -> bytes:
        sessions = self.sessions.get(sender_device, [])
        if is_prekey:
            header, msg = pairwise.decode_prekey(ciphertext)
            for i, s in enumerate(sessions):
                if s.initial_ephemeral == header.ephemeral_key:
                    plaintext = await s.decrypt(msg, context)
                    self._promote(sender_device, i)
                    return plaintext
            self._check_identity(sender_device, header.identity_key)
            session, plaintext = await pairwise.respond(self.keys, self.device, sender_device,
                                                        header, msg, context)
            self._remember(session)
            return plaintext
        msg = pairwise.decode_ratchet(ciphertext)
        if not sessions:
            raise SessionBroken(f"no session with {sender_device}; ask them to send again")
        error: SessionBroken | None = None
        for i, s in enumerate(sessions):
            try:
                plaintext = await s.decrypt(msg, context)
            except SessionBroken as e:
                error = error or e
                continue
            self._promote(sender_device, i)
            return plaintext
        assert error is not None
        raise error

    def _promote(self, device: str, index: int) -> None:
        if index:
            lst = self.sessions[device]
            lst.insert(0, lst.pop(index))

    # -- group sender keys -----------------------------------------------------------------

    def group_key(self, conversation: str) -> GroupSenderKey | None:
        return self.group_keys.get(conversation)

    def rotate_group_key(self, conversation: str) -> GroupSenderKey:
        """A brand-new sender key (new chain id, chain key and signing key), not given to
        anyone yet."""
        key = GroupSenderKey(OwnSenderKey.generate())
        self.group_keys[conversation] = key
        return key

    def mark_group_key_stale(self, conversation: str) -> None:
        key = self.group_keys.get(conversation)
        if key is not None:
            key.stale = True

    def group_encrypt(self, conversation: str, plaintext: bytes, context: bytes) -> bytes:
        key = self.group_keys.get(conversation)
        if key is None or key.stale:
            raise SessionBroken("no current sender key for this group; rotate first")
        return key.key.encrypt(plaintext, context)

    def accept_sender_key(self, conversation: str, sender_device: str,
                          distribution: Distribution) -> bool:
        """Store a peer's sender key. A chain already held is kept as is (its state may be
        at an earlier iteration, with messages still to come). -> True if it was new."""
        chains = self.peer_sender_keys.setdefault((conversation, sender_device), [])
        if any(c.chain_id == distribution.chain_id for c in chains):
            return False
        chains.insert(0, PeerSenderKey.from_distribution(distribution))
        del chains[MAX_CHAINS:]
        return True

    def group_decrypt(self, conversation: str, sender_device: str, ciphertext: bytes,
                      context: bytes) -> bytes:
        chain_id, _ = parse_header(ciphertext)
        for chain in self.peer_sender_keys.get((conversation, sender_device), []):
            if chain.chain_id == chain_id:
                return chain.decrypt(ciphertext, context)
        raise MissingSenderKey(f"no sender key {chain_id} from {sender_device} in "
                               f"{conversation}")

    def drop_sender_keys(self, conversation: str, users: Iterable[str] | None = None) -> None:
        """Forget peers' sender keys in a conversation (all, or those of `users`)."""
        users = None if users is None else set(users)
        for conv, device in list(self.peer_sender_keys):
            if conv == conversation and (users is None or user_of(device) in users):
                del self.peer_sender_keys[(conv, device)]

    # -- persistence -----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device, "keys": self.keys.to_json(),
            "sessions": {d: [s.to_json() for s in lst] for d, lst in self.sessions.items()},
            "identities": {d: k.hex() for d, k in self.identities.items()},
            "group_keys": {c: k.to_json() for c, k in self.group_keys.items()},
            "peer_sender_keys": [{"conversation": c, "device": d,
                                  "chains": [k.to_json() for k in lst]}
                                 for (c, d), lst in self.peer_sender_keys.items()],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DeviceCrypto:
        self = cls(d["device"], DeviceKeys.from_json(d["keys"]))
        self.sessions = {dev: [Session.from_json(s) for s in lst]
                         for dev, lst in d["sessions"].items()}
        self.identities = {dev: bytes.fromhex(k) for dev, k in d["identities"].items()}
        self.group_keys = {c: GroupSenderKey.from_json(k) for c, k in d["group_keys"].items()}
        self.peer_sender_keys = {(e["conversation"], e["device"]):
                                 [PeerSenderKey.from_json(k) for k in e["chains"]]
                                 for e in d["peer_sender_keys"]}
        return self
