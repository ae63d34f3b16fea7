"""Helpers: SDK devices (DeviceCrypto engines) that talk to each other in memory, the way
the server would route them: a claimed bundle per device, one ciphertext per recipient."""

from __future__ import annotations

import itertools

from clients.sdk import plaintext as pt
from clients.sdk.crypto.engine import DeviceCrypto, message_context
from clients.sdk.crypto.keys import PeerBundle

_ids = itertools.count(1)
CONV = "conversations/c0ffee00-0000-4000-8000-000000000001"


def device(user: str, n: int = 1) -> DeviceCrypto:
    return DeviceCrypto.create(f"users/{user}/devices/{user}-{n}")


def claim(peer: DeviceCrypto, with_one_time: bool = True) -> PeerBundle:
    """What ClaimKeyBundles hands out: identity, signed prekey and (maybe) one fresh
    one-time prekey, published and claimed once."""
    otpk = peer.keys.new_one_time_prekeys(1)[0] if with_one_time else None
    return PeerBundle(peer.device, peer.identity_key, peer.keys.signed_prekey(), otpk)


def new_id() -> str:
    return f"00000000-0000-4000-8000-{next(_ids):012d}"


class Wire:
    """One sent message as every recipient would get it."""

    def __init__(self, sender: DeviceCrypto, conversation: str, message_id: str,
                 out: dict[str, tuple[bool, bytes]]) -> None:
        self.sender, self.conversation, self.message_id, self.out = (sender, conversation,
                                                                     message_id, out)

    def context(self) -> bytes:
        return message_context(self.conversation, self.message_id, self.sender.device)

    async def open(self, recipient: DeviceCrypto) -> pt.Content:
        is_prekey, ciphertext = self.out[recipient.device]
        return pt.decode(await recipient.decrypt_from(self.sender.device, is_prekey,
                                                      ciphertext, self.context()))


async def send(sender: DeviceCrypto, content: pt.Content, recipients: list[DeviceCrypto],
               conversation: str = CONV, one_time: bool = True) -> Wire:
    bundles = {r.device: claim(r, one_time) for r in recipients
               if not sender.has_session(r.device)}
    message_id = new_id()
    out = await sender.encrypt_for(pt.encode(content),
                                   message_context(conversation, message_id, sender.device),
                                   [r.device for r in recipients], bundles)
    return Wire(sender, conversation, message_id, out)
