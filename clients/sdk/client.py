"""The SDK's front door: a logged-in device that sends and receives end-to-end encrypted
messages. It ties together the crypto engine (crypto/engine.py), the encrypted profile
(store.py, state.py), the REST transport (transport.py) and the inbox sources (inbox.py).

    client = await ZynkClient.login(profile, passphrase, server, "alice", password)
    await client.send("bob", Text("hi"))
    await client.listen(print_events)

Invariants:
- One asyncio.Lock guards the crypto engine and the state: a ratchet is never advanced by two
  tasks at once, and every change is saved (encrypted, atomically) before anything that
  depends on it leaves the process: ratchets advance and the outbox entry is saved before
  SendMessage; inbox entries are saved before they are acknowledged.
- Sends go through the outbox with a client-generated message id that is reused on every
  retry (timeouts, DEVICE_MISMATCH, a crash and a later run), so the server stores a message
  once and a message key is never used twice.
- Plaintext, keys and tokens are never logged and never sent anywhere but in ciphertext.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import pathlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from clients.sdk import errors as E
from clients.sdk import plaintext as pt
from clients.sdk.crypto.engine import DeviceCrypto, message_context, user_of
from clients.sdk.crypto.fingerprint import fingerprint, safety_number
from clients.sdk.crypto.keys import OneTimePrekey, PeerBundle, SignedPrekey
from clients.sdk.inbox import InboxSource, RealtimeInbox, RestInbox
from clients.sdk.state import OutboxEntry, ProfileState, Tokens
from clients.sdk.store import EncryptedState, KdfParams, ProfileDir
from clients.sdk.transport import Transport
from zynk.auth.v1 import auth_pb2 as auth
from zynk.group.v1 import group_pb2 as grp
from zynk.messaging.v1 import messaging_pb2 as msg

INITIAL_PREKEYS = 100
PREKEY_LOW_WATER = 25
PREKEY_TARGET = 100
SIGNED_PREKEY_MAX_AGE_S = 7 * 24 * 3600
BUNDLE_MAX_AGE_S = 7 * 24 * 3600
MAX_SEND_ATTEMPTS = 4

_PREKEY = msg.ENVELOPE_TYPE_PREKEY
_RATCHET = msg.ENVELOPE_TYPE_RATCHET
_SYS = msg.SystemEvent


@dataclasses.dataclass(frozen=True, slots=True)
class Conversation:
    name: str
    kind: str  # "direct" | "group"
    title: str  # "@bob" or "#friends"
    participants: tuple[str, ...] = ()  # direct: both users
    group: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """Something to show the user."""

    # message edit reaction delete system receipt (read) delivered read (own read position
    # moved on another device) caught_up error info
    kind: str
    conversation: str = ""
    title: str = ""
    sender: str = ""  # username
    message_id: str = ""
    text: str = ""
    sequence: int = 0
    time: float = 0.0
    outgoing: bool = False


def _ts(t: Any) -> float:
    return t.seconds + t.nanos / 1e9


def _message_id(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _conversation_of(message_name: str) -> str:
    return message_name.split("/messages/", 1)[0]


def _bundle(b: auth.KeyBundle) -> PeerBundle:
    otpk = None
    if b.HasField("one_time_prekey"):
        otpk = OneTimePrekey(b.one_time_prekey.key_id, b.one_time_prekey.public_key)
    return PeerBundle(b.device, b.identity_key,
                      SignedPrekey(b.signed_prekey.key_id, b.signed_prekey.public_key,
                                   b.signed_prekey.signature), otpk)


class ZynkClient:
    def __init__(self, profile: ProfileDir, store: EncryptedState, state: ProfileState,
                 transport: Transport) -> None:
        self.profile = profile
        self._store = store
        self.state = state
        self.transport = transport
        self._lock = asyncio.Lock()
        self._save_lock = asyncio.Lock()
        # Follow-ups decided while processing the inbox, run after the batch (outside the
        # lock, since they send): sender-key requests to make and to answer.
        self._requests: list[tuple[str, str, int]] = []  # (conversation, device, chain)
        self._answers: list[tuple[str, str, int]] = []  # (conversation, requester, chain)
        self._asked: set[tuple[str, str, int]] = set()
        self._answered: set[tuple[str, str, int]] = set()
        self._prekeys_used = False
        # Outbox entries that failed permanently (and were dropped) in this run.
        self.dropped: list[tuple[OutboxEntry, E.ZynkError]] = []

    # -- lifecycle -------------------------------------------------------------------------

    @staticmethod
    async def register(server: str, username: str, password: str,
                       display_name: str = "") -> auth.User:
        transport = Transport(server)
        try:
            return await transport.register(username, password, display_name)
        finally:
            await transport.close()

    @classmethod
    async def login(cls, home: pathlib.Path, profile_name: str, passphrase: str, server: str,
                    username: str, password: str, device_name: str = "zynk cli",
                    kdf: KdfParams = KdfParams()) -> ZynkClient:
        """Log in (a new device), create the profile and publish the device's keys."""
        profile = ProfileDir(home, profile_name).lock()
        transport = Transport(server)
        try:
            if profile.exists():
                raise E.ProfileError(
                    f"the profile {profile.path} already holds a login; `zynk logout` first, "
                    "or pick another one with --profile")
            if not passphrase:
                raise E.ProfileError("the passphrase must not be empty")
            resp = await transport.login(username, password, device_name)
            state = ProfileState(
                server=transport.server, user=resp.user.name, username=resp.user.username,
                device=resp.device.name, device_display_name=resp.device.display_name,
                tokens=transport.tokens, crypto=DeviceCrypto.create(resp.device.name))
            state.usernames[resp.user.name] = resp.user.username
            # The private keys are on disk before their public halves are published.
            store = await asyncio.to_thread(EncryptedState.create, profile.state_path,
                                            passphrase, state.to_json(), kdf)
        except BaseException:
            await transport.close()
            profile.unlock()
            raise
        self = cls(profile, store, state, transport)
        transport._on_tokens = self._tokens_changed
        try:
            await self.maintain_keys()
        except BaseException:
            await self.close()
            raise
        return self

    @classmethod
    async def open(cls, home: pathlib.Path, profile_name: str, passphrase: str,
                   server: str | None = None) -> ZynkClient:
        profile = ProfileDir(home, profile_name)
        if not profile.exists():
            raise E.NotLoggedIn(f"no login in {profile.path}; run `zynk login` first")
        profile.lock()
        try:
            store, data = await asyncio.to_thread(EncryptedState.open, profile.state_path,
                                                  passphrase)
            state = ProfileState.from_json(data)
        except BaseException:
            profile.unlock()
            raise
        if server and server.rstrip("/") != state.server:
            profile.unlock()
            raise E.ProfileError(f"this profile belongs to {state.server}; use --profile to "
                                 f"pick or create another profile for {server}")
        self = cls(profile, store, state, Transport(state.server, tokens=state.tokens))
        self.transport._on_tokens = self._tokens_changed
        return self

    async def close(self) -> None:
        await self.transport.close()
        self.profile.unlock()

    async def __aenter__(self) -> ZynkClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def save(self) -> None:
        async with self._save_lock:
            snapshot = self.state.to_json()  # on the loop thread: no concurrent mutation
            await asyncio.to_thread(self._store.save, snapshot)

    async def _tokens_changed(self, tokens: Tokens) -> None:
        # A refresh token works once: the new pair must be on disk before it is used.
        self.state.tokens = tokens
        await self.save()

    @property
    def user(self) -> str:
        return self.state.user

    @property
    def device(self) -> str:
        return self.state.device

    # -- account and devices --------------------------------------------------------------

    async def logout(self) -> None:
        """End this device's session on the server, then forget its state and keys."""
        await self.transport.logout()
        self.profile.remove_state()

    def forget_locally(self) -> None:
        self.profile.remove_state()

    async def whoami(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "username": self.state.username, "user": self.user, "device": self.device,
            "device_name": self.state.device_display_name, "server": self.state.server,
            "identity_fingerprint": fingerprint(self.device, [self.state.crypto.identity_key]),
        }
        status = await self.transport.prekey_status(self.device)
        info["one_time_prekeys"] = status.one_time_prekey_count
        info["signed_prekey_id"] = status.signed_prekey_id
        return info

    async def devices(self, show_revoked: bool = False) -> list[auth.Device]:
        return await self.transport.list_devices(show_revoked)

    async def resolve_device(self, ref: str) -> str:
        """A device by full name, id, unique id prefix or unique display name."""
        devices = await self.transport.list_devices(show_revoked=False)
        exact = [d.name for d in devices if ref in (d.name, d.name.rsplit("/", 1)[-1])]
        if exact:
            return exact[0]
        found = [d.name for d in devices if d.name.rsplit("/", 1)[-1].startswith(ref)
                 or d.display_name == ref]
        if len(found) == 1:
            return found[0]
        if not found:
            raise E.NotFound(f"no active device of yours matches {ref!r}")
        raise E.InvalidArgument(f"{ref!r} matches several devices; give more of the id")

    async def rename_device(self, ref: str, display_name: str) -> auth.Device:
        device = await self.transport.rename_device(await self.resolve_device(ref),
                                                    display_name)
        if device.name == self.device:
            self.state.device_display_name = device.display_name
            await self.save()
        return device

    async def revoke_device(self, ref: str) -> auth.Device:
        name = await self.resolve_device(ref)
        device = await self.transport.revoke_device(name)
        if name == self.device:
            self.profile.remove_state()
        else:
            async with self._lock:
                self.state.crypto.forget_device(name)
                await self.save()
        return device

    # -- keys ------------------------------------------------------------------------------

    async def maintain_keys(self) -> int:
        """Publish this device's keys on first use, top up one-time prekeys below the low
        water mark and rotate the signed prekey once a week. -> unclaimed prekeys left."""
        keys = self.state.crypto.keys
        if not self.state.keys_published:
            async with self._lock:
                keys.new_one_time_prekeys(max(0, INITIAL_PREKEYS - keys.one_time_prekey_count))
                await self.save()
            otpks = [auth.OneTimePrekey(key_id=k.key_id, public_key=k.public_key)
                     for k in keys.one_time_prekeys()]
            try:
                count = await self.transport.publish_keys(
                    self.device, keys.identity_key, _spk_pb(keys.signed_prekey()), otpks)
            except E.AlreadyExists:  # an earlier attempt went through; its answer was lost
                count = (await self.transport.prekey_status(self.device)).one_time_prekey_count
            self.state.keys_published = True
            await self.save()
            return count
        status = await self.transport.prekey_status(self.device)
        spk_pb = None
        if status.signed_prekey_id != keys.signed_prekey_id:
            spk_pb = _spk_pb(keys.signed_prekey())  # a rotation not yet published
        elif keys.signed_prekey_age() > SIGNED_PREKEY_MAX_AGE_S:
            async with self._lock:
                spk_pb = _spk_pb(keys.rotate_signed_prekey())
                await self.save()
        otpks: list[auth.OneTimePrekey] = []
        count = status.one_time_prekey_count
        if count < PREKEY_LOW_WATER:
            async with self._lock:
                fresh = keys.new_one_time_prekeys(PREKEY_TARGET - count)
                await self.save()
            otpks = [auth.OneTimePrekey(key_id=k.key_id, public_key=k.public_key)
                     for k in fresh]
        if spk_pb is None and not otpks:
            return count
        for i in range(0, max(len(otpks), 1), 200):
            count = await self.transport.publish_keys(self.device, keys.identity_key,
                                                      spk_pb if i == 0 else None,
                                                      otpks[i:i + 200])
        return count

    # -- names -----------------------------------------------------------------------------

    async def lookup(self, username: str) -> str:
        """username -> `users/{uuid}`."""
        username = username.removeprefix("@").lower()
        for user, name in self.state.usernames.items():
            if name == username:
                return user
        found = await self.transport.lookup_user(username)
        self.state.usernames[found.name] = found.username
        return found.name

    async def username(self, user: str) -> str:
        name = self.state.usernames.get(user)
        if name is None:
            try:
                name = (await self.transport.get_user(user)).username
            except E.ZynkError:
                return user
            self.state.usernames[user] = name
        return name

    async def resolve(self, target: str) -> Conversation:
        """`bob`/`@bob`/`users/{id}` (a direct conversation), `#name` or `groups/{id}` (a
        group) or `conversations/{id}`."""
        if target.startswith("#") or target.startswith("groups/"):
            group = await self.find_group(target.removeprefix("#"))
            return await self._group_conversation(group)
        if target.startswith("conversations/"):
            conv = await self.transport.get_conversation(target)
            if conv.type == msg.Conversation.TYPE_GROUP:
                return await self._group_conversation(await self.transport.get_group(conv.group))
            return await self._direct(conv)
        user = target if target.startswith("users/") else await self.lookup(target)
        if user == self.user:
            raise E.InvalidArgument("you cannot start a conversation with yourself")
        cached = self.state.directs.get(user)
        if cached:
            info = self.state.conversations.get(cached, {})
            return Conversation(cached, "direct", info.get("title", target),
                                (self.user, user))
        return await self._direct(await self.transport.direct_conversation(user))

    async def _direct(self, conv: msg.Conversation) -> Conversation:
        others = [u for u in conv.participants if u != self.user] or [self.user]
        title = "@" + await self.username(others[0])
        self.state.directs[others[0]] = conv.name
        self.state.conversations[conv.name] = {"type": "direct", "peer": others[0],
                                               "title": title}
        return Conversation(conv.name, "direct", title, tuple(conv.participants))

    async def _group_conversation(self, group: grp.Group) -> Conversation:
        title = "#" + group.display_name
        self.state.conversations[group.conversation] = {"type": "group", "group": group.name,
                                                        "title": title}
        return Conversation(group.conversation, "group", title, (), group.name)

    async def find_group(self, ref: str) -> grp.Group:
        if ref.startswith("groups/"):
            return await self.transport.get_group(ref)
        groups = await self.transport.list_groups()
        found = [g for g in groups if g.display_name == ref or g.name.endswith("/" + ref)]
        if len(found) == 1:
            return found[0]
        if not found:
            raise E.NotFound(f"you are in no group named {ref!r}")
        raise E.InvalidArgument(f"several of your groups are named {ref!r}; use its "
                                "groups/{id} name")

    async def _title(self, conversation: str) -> str:
        info = self.state.conversations.get(conversation)
        if info:
            return info["title"]
        try:
            conv = await self.transport.get_conversation(conversation)
            if conv.type == msg.Conversation.TYPE_GROUP:
                return (await self._group_conversation(
                    await self.transport.get_group(conv.group))).title
            return (await self._direct(conv)).title
        except E.ZynkError:
            return conversation

    # -- sending ---------------------------------------------------------------------------

    async def send_text(self, target: str, text: str) -> str:
        return await self.send(target, pt.Text(text))

    async def send(self, target: str | Conversation, content: pt.Content) -> str:
        """Encrypt and send; -> the message id. A send that fails transiently stays in the
        outbox and is retried (same id, same ciphertexts) by the next flush."""
        pt.validate(content)
        conv = target if isinstance(target, Conversation) else await self.resolve(target)
        members: list[str] = []
        if conv.kind == "group":
            members = [m.user for m in await self.transport.list_members(conv.group)]
        async with self._lock:
            message_id = str(uuid.uuid4())
            if conv.kind == "group":
                self._prepare_sender_key(conv, members)
                context = message_context(conv.name, message_id, self.device)
                ciphertext = self.state.crypto.group_encrypt(conv.name, pt.encode(content),
                                                             context)
                entry = OutboxEntry(message_id, conv.name, "sender_key", ciphertext, members)
            else:
                entry = OutboxEntry(message_id, conv.name, "pairwise", pt.encode(content),
                                    list(conv.participants))
            self.state.outbox.append(entry)
            if isinstance(content, pt.Text):
                self._record_own(conv, message_id, content.body)
            else:
                self._apply_own(conv, content)
            await self.save()
            await self._flush()
        for dropped, err in self.dropped:
            if dropped.message_id == message_id:
                self.dropped.remove((dropped, err))
                raise err
        return message_id

    def _prepare_sender_key(self, conv: Conversation, members: list[str]) -> None:
        """Rotate the group sender key when membership changed since it was given out, and
        queue its distribution (pairwise, to every member device) before the message."""
        crypto = self.state.crypto
        key = crypto.group_key(conv.name)
        if key is not None and not key.stale and sorted(key.distributed_users) == sorted(members):
            return
        key = crypto.rotate_group_key(conv.name)
        key.distributed_users = sorted(members)
        content = pt.SenderKey(conv.name, key.key.distribution())
        self.state.outbox.append(OutboxEntry(str(uuid.uuid4()), conv.name, "pairwise",
                                             pt.encode(content), sorted(members),
                                             purpose="sender_key"))

    def _record_own(self, conv: Conversation, message_id: str, body: str) -> None:
        self.state.add_history({
            "name": f"{conv.name}/messages/{message_id}", "conversation": conv.name,
            "sender": self.user, "text": body, "time": time.time(), "sequence": 0,
            "edited": False, "deleted": False, "reactions": {}})
        self.state.mark_seen(f"{conv.name}/messages/{message_id}")

    def _apply_own(self, conv: Conversation, content: pt.Content) -> None:
        target = getattr(content, "target", None)
        item = self.state.find_history(conv.name, target) if target else None
        if item is not None:
            _apply(item, self.user, content)

    async def flush_outbox(self) -> int:
        """Retry whatever earlier runs could not send. -> messages still waiting."""
        async with self._lock:
            if self.state.outbox:
                await self._flush()
            return len(self.state.outbox)

    async def _flush(self) -> None:
        """Send the outbox in order. A transient failure stops here (the rest waits for the
        next flush); a permanent one drops that entry, records it in `dropped` and goes on,
        so one undeliverable message never blocks the others."""
        while self.state.outbox:
            entry = self.state.outbox[0]
            try:
                sent = await self._deliver(entry)
            except E.TRANSIENT:
                raise
            except E.ZynkError as err:
                self.state.outbox.pop(0)
                self.dropped.append((entry, err))
                if entry.purpose == "sender_key":
                    self.state.crypto.mark_group_key_stale(entry.conversation)
                await self.save()
                continue
            self.state.outbox.pop(0)
            self.state.mark_seen(sent.name)
            item = self.state.find_history(entry.conversation, entry.message_id)
            if item is not None:
                item["sequence"] = sent.sequence
            if entry.purpose == "sender_key":
                key = self.state.crypto.group_key(entry.conversation)
                if key is not None:
                    key.distributed_devices = sorted(entry.envelopes)
            await self.save()

    async def _deliver(self, entry: OutboxEntry) -> msg.Message:
        req = msg.SendMessageRequest(parent=entry.conversation, message_id=entry.message_id)
        if entry.kind == "sender_key":
            req.sender_key.ciphertext = entry.payload
            return await self.transport.send_message(req)
        if not entry.envelopes:
            devices = await self._devices_for(entry.participants)
        else:
            devices = set(entry.envelopes)
        for _attempt in range(MAX_SEND_ATTEMPTS):
            await self._encrypt_entry(entry, devices)
            await self.save()
            req.ClearField("pairwise")
            for device in sorted(entry.envelopes):
                is_prekey, ciphertext = entry.envelopes[device]
                req.pairwise.envelopes.add(recipient_device=device,
                                           type=_PREKEY if is_prekey else _RATCHET,
                                           ciphertext=ciphertext)
            if not req.pairwise.envelopes:
                raise E.PeerHasNoKeys("nobody to send to: no device in this conversation "
                                      "has published keys")
            try:
                return await self.transport.send_message(req)
            except E.DeviceMismatch as mismatch:
                devices = await self._apply_mismatch(entry, devices, mismatch)
        raise E.FailedPrecondition("the conversation's devices keep changing; try again")

    async def _encrypt_entry(self, entry: OutboxEntry, devices: set[str]) -> None:
        need = sorted(d for d in devices if d not in entry.envelopes and d != self.device)
        if not need:
            return
        bundles = await self._bundles_for(need)
        context = message_context(entry.conversation, entry.message_id, self.device)
        out = await self.state.crypto.encrypt_for(entry.payload, context, need, bundles)
        for device in need:
            self.state.bundles.pop(device, None)
        entry.envelopes.update(out)

    async def _apply_mismatch(self, entry: OutboxEntry, devices: set[str],
                              mismatch: E.DeviceMismatch) -> set[str]:
        if not mismatch.missing and not mismatch.extra:
            raise mismatch
        for device in mismatch.extra:
            entry.envelopes.pop(device, None)
            devices.discard(device)
            if user_of(device) in entry.participants:
                # A participant's device the server no longer has: revoked.
                self.state.crypto.forget_device(device)
        devices |= set(mismatch.missing)
        return devices

    async def _devices_for(self, users: Iterable[str]) -> set[str]:
        """Every device that must get an envelope: known peers' devices, devices claimed for
        users we know none of, and this user's other devices."""
        crypto = self.state.crypto
        out: set[str] = set()
        for user in sorted(set(users)):
            if user == self.user:
                own = [d.name for d in await self.transport.list_devices()
                       if d.has_keys and d.name != self.device]
                out.update(own)
                continue
            known = crypto.known_devices(user)
            if known:
                out.update(known)
                continue
            bundles = await self._claim(user)
            if not bundles:
                raise E.PeerHasNoKeys(f"{await self.username(user)} has no device with "
                                      "published keys (they must log in with a Zynk client "
                                      "first)")
            out.update(bundles)
        return out

    async def _claim(self, user: str, devices: Sequence[str] = ()) -> dict[str, PeerBundle]:
        bundles = {}
        for b in await self.transport.claim_key_bundles(user, devices):
            if b.device == self.device:
                continue
            bundle = _bundle(b)
            bundles[b.device] = bundle
            self.state.bundles[b.device] = {**bundle.to_json(), "claimed": time.time()}
        return bundles

    async def _bundles_for(self, devices: Sequence[str]) -> dict[str, PeerBundle]:
        crypto = self.state.crypto
        now = time.time()
        out: dict[str, PeerBundle] = {}
        wanted: dict[str, list[str]] = {}
        for device in devices:
            if crypto.has_session(device):
                continue
            cached = self.state.bundles.get(device)
            if cached and now - cached["claimed"] < BUNDLE_MAX_AGE_S:
                out[device] = PeerBundle.from_json(cached)
            else:
                wanted.setdefault(user_of(device), []).append(device)
        for user, devs in wanted.items():
            got = await self._claim(user, devs)
            missing = [d for d in devs if d not in got]
            if missing:
                raise E.PeerHasNoKeys(f"device {missing[0]} of {await self.username(user)} "
                                      "has not published keys yet; try again shortly")
            out.update(got)
        return out

    # -- receiving -------------------------------------------------------------------------

    async def process(self, entries: Sequence[msg.SubscribeResponse]) -> list[Event]:
        """Decrypt and apply inbox entries, in order, and save. The caller acknowledges the
        last cursor only after this returns (the state is then on disk)."""
        async with self._lock:
            events: list[Event] = []
            for entry in entries:
                events.extend(await self._process_one(entry))
                if entry.cursor:
                    self.state.cursor = entry.cursor
            await self.save()
        return events

    async def _process_one(self, entry: msg.SubscribeResponse) -> list[Event]:
        kind = entry.WhichOneof("event")
        if kind == "message":
            return await self._on_message(entry.message)
        if kind == "receipt":
            r = entry.receipt
            who = await self.username(r.user)
            title = await self._title(r.conversation)
            if r.type == msg.RECEIPT_TYPE_READ:
                return [Event("receipt", r.conversation, title, who,
                              text=f"{who} read up to #{r.read_sequence}",
                              sequence=r.read_sequence, time=_ts(r.event_time))]
            return [Event("delivered", r.conversation, title, who,
                          text=f"{who} received {len(r.messages)} message(s)",
                          time=_ts(r.event_time))]
        if kind == "read_state":
            return [Event("read", entry.read_state.conversation,
                          sequence=entry.read_state.read_sequence)]
        if kind == "caught_up":
            return [Event("caught_up")]
        return []

    async def _on_message(self, m: msg.Message) -> list[Event]:
        if self.state.seen_before(m.name) or (m.sender_device == self.device and m.sender_device):
            return []  # already processed, or our own message echoed back
        conversation = _conversation_of(m.name)
        content_kind = m.WhichOneof("content")
        events: list[Event] = []
        try:
            if content_kind == "system_event":
                events = await self._on_system(conversation, m)
            elif content_kind == "envelope":
                events = await self._on_envelope(conversation, m)
            elif content_kind == "sender_key":
                events = await self._on_group_message(conversation, m)
            elif m.HasField("delete_time"):
                item = self.state.find_history(conversation, _message_id(m.name))
                if item is not None:
                    item["deleted"] = True
        except E.DuplicateMessage:
            events = []
        except (E.CryptoError, E.ContentError) as err:
            who = await self.username(m.sender)
            events = [Event("error", conversation, await self._title(conversation), who,
                            _message_id(m.name), f"could not read a message from {who}: {err}",
                            m.sequence, _ts(m.create_time))]
        self.state.mark_seen(m.name)
        return events

    async def _on_envelope(self, conversation: str, m: msg.Message) -> list[Event]:
        env = m.envelope
        if env.recipient_device != self.device:
            return []
        context = message_context(conversation, _message_id(m.name), m.sender_device)
        is_prekey = env.type == _PREKEY
        plaintext = await self.state.crypto.decrypt_from(m.sender_device, is_prekey,
                                                         env.ciphertext, context)
        if is_prekey:
            self._prekeys_used = True
        return await self._on_content(conversation, m, pt.decode(plaintext), pairwise=True)

    async def _on_group_message(self, conversation: str, m: msg.Message) -> list[Event]:
        context = message_context(conversation, _message_id(m.name), m.sender_device)
        ciphertext = m.sender_key.ciphertext
        try:
            plaintext = self.state.crypto.group_decrypt(conversation, m.sender_device,
                                                        ciphertext, context)
        except E.MissingSenderKey:
            from clients.sdk.crypto.senderkey import parse_header

            chain_id, _ = parse_header(ciphertext)
            self.state.add_pending_group({
                "name": m.name, "conversation": conversation, "sender": m.sender,
                "sender_device": m.sender_device, "ciphertext": ciphertext.hex(),
                "sequence": m.sequence, "time": _ts(m.create_time)})
            self._requests.append((conversation, m.sender_device, chain_id))
            who = await self.username(m.sender)
            return [Event("info", conversation, await self._title(conversation), who,
                          _message_id(m.name), f"waiting for {who}'s group key to read a "
                          "message", m.sequence, _ts(m.create_time))]
        return await self._on_content(conversation, m, pt.decode(plaintext), pairwise=False)

    async def _on_content(self, conversation: str, m: msg.Message, content: pt.Content,
                          pairwise: bool) -> list[Event]:
        base = dict(conversation=conversation, message_id=_message_id(m.name),
                    sequence=m.sequence, time=_ts(m.create_time),
                    outgoing=m.sender == self.user)
        if isinstance(content, pt.SenderKey):
            if not pairwise:
                raise E.ContentError("a sender key arrived outside a pairwise session")
            new = self.state.crypto.accept_sender_key(content.conversation, m.sender_device,
                                                      content.distribution)
            return await self._retry_pending(content.conversation, m.sender_device) if new \
                else []
        if isinstance(content, pt.SenderKeyRequest):
            if pairwise and content.device == self.device:
                self._answers.append((content.conversation, m.sender, content.chain_id))
            return []
        who = await self.username(m.sender)
        title = await self._title(conversation)
        if isinstance(content, pt.Text):
            self.state.add_history({
                "name": m.name, "conversation": conversation, "sender": m.sender,
                "text": content.body, "time": base["time"], "sequence": m.sequence,
                "edited": False, "deleted": False, "reactions": {}})
            return [Event("message", title=title, sender=who, text=content.body, **base)]
        item = self.state.find_history(conversation, content.target)
        if item is not None:
            _apply(item, m.sender, content)
        match content:
            case pt.Edit(target, body):
                return [Event("edit", title=title, sender=who, text=f"[{target}] {body}",
                              **base)]
            case pt.Reaction(target, emoji, remove):
                verb = "removed" if remove else "reacted"
                return [Event("reaction", title=title, sender=who,
                              text=f"{verb} {emoji} to [{target}]", **base)]
            case pt.Delete(target):
                return [Event("delete", title=title, sender=who, text=f"deleted [{target}]",
                              **base)]
        return []

    async def _retry_pending(self, conversation: str, device: str) -> list[Event]:
        events: list[Event] = []
        keep = []
        for item in self.state.pending_group:
            if item["conversation"] != conversation or item["sender_device"] != device:
                keep.append(item)
                continue
            m = msg.Message(name=item["name"], sequence=item["sequence"], sender=item["sender"],
                            sender_device=device)
            m.create_time.FromNanoseconds(int(item["time"] * 1e9))
            m.sender_key.ciphertext = bytes.fromhex(item["ciphertext"])
            try:
                context = message_context(conversation, _message_id(m.name), device)
                plaintext = self.state.crypto.group_decrypt(conversation, device,
                                                            m.sender_key.ciphertext, context)
                events.extend(await self._on_content(conversation, m, pt.decode(plaintext),
                                                     pairwise=False))
            except (E.CryptoError, E.ContentError) as err:
                who = await self.username(m.sender)
                events.append(Event("error", conversation, await self._title(conversation),
                                    who, _message_id(m.name),
                                    f"could not read a message from {who}: {err}",
                                    m.sequence, item["time"]))
        self.state.pending_group = keep
        return events

    async def _on_system(self, conversation: str, m: msg.Message) -> list[Event]:
        ev = m.system_event
        crypto = self.state.crypto
        actor = await self.username(ev.actor) if ev.actor else "someone"
        users = [await self.username(u) for u in ev.users]
        if ev.type in (_SYS.TYPE_MEMBERS_ADDED, _SYS.TYPE_MEMBERS_REMOVED):
            # Membership changed: our next group message goes out under a new sender key,
            # given only to the members at that time.
            crypto.mark_group_key_stale(conversation)
        if ev.type == _SYS.TYPE_MEMBERS_REMOVED:
            removed = set(ev.users)
            if self.user in removed:
                crypto.drop_sender_keys(conversation)
                crypto.group_keys.pop(conversation, None)
            else:
                crypto.drop_sender_keys(conversation, removed)
        if ev.type == _SYS.TYPE_CONVERSATION_CLOSED:
            crypto.drop_sender_keys(conversation)
            crypto.group_keys.pop(conversation, None)
        text = {
            _SYS.TYPE_CONVERSATION_CREATED: f"{actor} started the conversation",
            _SYS.TYPE_MEMBERS_ADDED: f"{actor} added {', '.join(users)}",
            _SYS.TYPE_MEMBERS_REMOVED: f"{actor} removed {', '.join(users)}",
            _SYS.TYPE_MESSAGE_TTL_CHANGED: f"{actor} changed disappearing messages",
            _SYS.TYPE_CONVERSATION_CLOSED: "the conversation was closed",
        }.get(ev.type, "the conversation changed")
        return [Event("system", conversation, await self._title(conversation), actor,
                      _message_id(m.name), text, m.sequence, _ts(m.create_time))]

    async def after_batch(self) -> None:
        """Follow-ups of processed entries, outside the lock: ask for missing sender keys,
        answer requests for ours, top up prekeys that sessions consumed."""
        requests, self._requests = self._requests, []
        for conversation, device, chain_id in requests:
            key = (conversation, device, chain_id)
            if key in self._asked:
                continue
            self._asked.add(key)
            await self._best_effort(self.send(
                user_of(device), pt.SenderKeyRequest(conversation, device, chain_id)))
        answers, self._answers = self._answers, []
        for conversation, requester, chain_id in answers:
            await self._best_effort(self._answer(conversation, requester, chain_id))
        if self._prekeys_used:
            self._prekeys_used = False
            await self._best_effort(self.maintain_keys())

    async def _answer(self, conversation: str, requester: str, chain_id: int) -> None:
        key = self.state.crypto.group_key(conversation)
        if key is None or key.stale or key.key.chain_id != chain_id:
            return  # our next group message rotates and reaches every member anyway
        if (conversation, requester, chain_id) in self._answered:
            return
        conv = await self.transport.get_conversation(conversation)
        members = {m.user for m in await self.transport.list_members(conv.group)}
        if requester not in members:
            return  # a former member: it must not get the current key
        self._answered.add((conversation, requester, chain_id))
        async with self._lock:
            distribution = key.key.distribution()
        await self.send(requester, pt.SenderKey(conversation, distribution))

    async def _best_effort(self, coro: Awaitable[Any]) -> None:
        try:
            await coro
        except E.ZynkError:
            pass  # retried by the next batch or the next send; never fatal to receiving

    def inbox(self, mode: str = "websocket", follow: bool = True,
              on_status: Callable[[str], None] | None = None) -> InboxSource:
        cursor = lambda: self.state.cursor  # noqa: E731
        if mode == "rest":
            return RestInbox(self.transport, self.device, cursor, follow)
        return RealtimeInbox(self.transport, cursor, on_status)

    async def listen(self, on_events: Callable[[list[Event]], Awaitable[None]], *,
                     follow: bool = True, mode: str = "auto",
                     on_status: Callable[[str], None] | None = None) -> None:
        """Receive until cancelled (or, with follow=False, until caught up). `mode` is
        "websocket", "rest" or "auto" (the WebSocket, or REST if the server has none)."""
        try:
            await self.flush_outbox()
        except E.TRANSIENT:
            pass
        await self.maintain_keys()
        if mode == "auto":
            mode = "websocket" if follow else "rest"
            try:
                await self._receive(self.inbox(mode, follow, on_status), on_events, follow)
                return
            except E.Unimplemented:
                if mode == "rest":
                    raise
                mode = "rest"
        await self._receive(self.inbox(mode, follow, on_status), on_events, follow)

    async def _receive(self, source: InboxSource, on_events, follow: bool) -> None:
        async with contextlib.aclosing(source.batches()) as batches:
            async for batch in batches:
                events = await self.process(batch)
                cursors = [e.cursor for e in batch if e.cursor]
                await on_events(events)
                if cursors:
                    await source.ack(cursors[-1])
                await self.after_batch()
                if not follow and any(e.HasField("caught_up") for e in batch):
                    return

    async def mark_read(self, conversation: str, sequence: int) -> None:
        if sequence > 0:
            await self.transport.mark_read(conversation, sequence)

    # -- edits, reactions, deletes ---------------------------------------------------------

    async def edit(self, target: str, message_id: str, text: str) -> str:
        return await self.send(target, pt.Edit(message_id, text))

    async def react(self, target: str, message_id: str, emoji: str,
                    remove: bool = False) -> str:
        return await self.send(target, pt.Reaction(message_id, emoji, remove))

    async def delete_for_everyone(self, target: str, message_id: str) -> str:
        conv = await self.resolve(target)
        sent = await self.send(conv, pt.Delete(message_id))
        try:  # also erase the server's copy (only the sender may; ours or not, say so)
            await self.transport.delete_message(f"{conv.name}/messages/{message_id}")
        except (E.PermissionDenied, E.NotFound):
            pass
        return sent

    # -- groups ----------------------------------------------------------------------------

    async def create_group(self, display_name: str, usernames: Sequence[str] = ()) -> grp.Group:
        members = [await self.lookup(u) for u in usernames]
        group = await self.transport.create_group(display_name, members)
        await self._group_conversation(group)
        await self.save()
        return group

    async def members(self, group_ref: str) -> list[tuple[str, str]]:
        group = await self.find_group(group_ref)
        return [(await self.username(m.user), grp.Role.Name(m.role).removeprefix("ROLE_"))
                for m in await self.transport.list_members(group.name)]

    async def invite(self, group_ref: str, max_uses: int = 0) -> grp.Invite:
        group = await self.find_group(group_ref)
        return await self.transport.create_invite(group.name, max_uses)

    async def join(self, token: str) -> grp.Group:
        joined = await self.transport.join_group(token)
        await self._group_conversation(joined.group)
        await self.save()
        return joined.group

    async def add_members(self, group_ref: str, usernames: Sequence[str]) -> int:
        group = await self.find_group(group_ref)
        users = [await self.lookup(u) for u in usernames]
        added = await self.transport.add_members(group.name, users)
        await self._membership_changed(group.conversation)
        return len(added)

    async def remove_members(self, group_ref: str, usernames: Sequence[str]) -> int:
        group = await self.find_group(group_ref)
        users = [await self.lookup(u) for u in usernames]
        removed = await self.transport.remove_members(group.name, users)
        await self._membership_changed(group.conversation)
        return removed

    async def leave(self, group_ref: str) -> None:
        group = await self.find_group(group_ref)
        await self.transport.leave_group(group.name)
        async with self._lock:
            self.state.crypto.drop_sender_keys(group.conversation)
            self.state.crypto.group_keys.pop(group.conversation, None)
            await self.save()

    async def _membership_changed(self, conversation: str) -> None:
        async with self._lock:
            self.state.crypto.mark_group_key_stale(conversation)
            await self.save()

    # -- verification ----------------------------------------------------------------------

    async def safety_number(self, username: str) -> str:
        """The 60-digit safety number between us and `username`, over the identity keys of
        every current device of both users (fingerprint.py). Claims bundles to learn the
        peer's devices; the claimed prekeys are kept for the first message to them."""
        peer = await self.lookup(username)
        async with self._lock:
            remote = await self._current_identities(peer)
            local = await self._current_identities(self.user)
            await self.save()
        if not remote:
            raise E.PeerHasNoKeys(f"{username} has no device with published keys")
        return safety_number(self.user, local.values(), peer, remote.values())

    async def _current_identities(self, user: str) -> dict[str, bytes]:
        crypto = self.state.crypto
        if user == self.user:
            devices = [d.name for d in await self.transport.list_devices() if d.has_keys]
            unknown = [d for d in devices if d != self.device and d not in crypto.identities]
            if unknown:
                await self._claim(user, unknown)
        else:
            claimed = await self._claim(user)
            devices = list(claimed)
        out = {}
        for device in devices:
            if device == self.device:
                out[device] = crypto.identity_key
                continue
            cached = self.state.bundles.get(device)
            identity = bytes.fromhex(cached["identity_key"]) if cached else \
                crypto.identities.get(device)
            if identity is None:
                continue
            known = crypto.identities.get(device)
            if known is not None and known != identity:
                raise E.IdentityKeyChanged(f"device {device} presents a different identity "
                                           "key than before")
            crypto.identities[device] = identity
            out[device] = identity
        return out


def _apply(item: dict[str, Any], sender: str, content: pt.Content) -> None:
    """Apply an edit/reaction/delete to a history item (only its author edits or deletes)."""
    match content:
        case pt.Edit(_, body) if item["sender"] == sender:
            item["text"], item["edited"] = body, True
        case pt.Delete(_) if item["sender"] == sender:
            item["text"], item["deleted"] = "", True
        case pt.Reaction(_, emoji, remove):
            if remove:
                item["reactions"].pop(sender, None)
            else:
                item["reactions"][sender] = emoji


def _spk_pb(spk: SignedPrekey) -> auth.SignedPrekey:
    return auth.SignedPrekey(key_id=spk.key_id, public_key=spk.public_key,
                             signature=spk.signature)

