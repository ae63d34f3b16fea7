"""What is inside a ciphertext: a small versioned structure, padded to hide its length.

Encoding: compact UTF-8 JSON of one object with `"v": 1` and a `"kind"`:

    text                 {"v":1,"kind":"text","body":"hi"}
    edit                 {"v":1,"kind":"edit","target":"<message uuid>","body":"hi!"}
    react                {"v":1,"kind":"react","target":"<uuid>","emoji":"👍","remove":false}
    delete               {"v":1,"kind":"delete","target":"<uuid>"}        (for everyone)
    sender_key           {"v":1,"kind":"sender_key","conversation":"conversations/..",
                          "chainId":7,"iteration":0,"chainKey":"<b64>","signingKey":"<b64>"}
    sender_key_request   {"v":1,"kind":"sender_key_request","conversation":"..",
                          "device":"users/../devices/..","chainId":7}

`target` is the id (UUID) of a message in the same conversation. Unknown fields are ignored
(forward compatible); an unknown kind or a higher version is UnsupportedContent, which a
client shows as "update your client" rather than dropping silently.

Padding: ISO/IEC 7816-4 (a 0x80 byte, then zeros) up to a bucket size: at least 256 bytes,
above that the Padmé length (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files
and Communication with PURBs", 2019), which leaks O(log log L) bits of the length L and
costs at most ~12% overhead.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import uuid
from typing import Any

from clients.sdk.crypto.senderkey import Distribution
from clients.sdk.errors import ContentError, UnsupportedContent

VERSION = 1
MIN_PADDED = 256
MAX_BODY_CHARS = 16_000
MAX_EMOJI_CHARS = 16
# Envelope ciphertexts are capped at 64 KiB; leave room for headers and the AEAD.
MAX_PADDED = 60 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Text:
    body: str


@dataclasses.dataclass(frozen=True, slots=True)
class Edit:
    target: str
    body: str


@dataclasses.dataclass(frozen=True, slots=True)
class Reaction:
    target: str
    emoji: str
    remove: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Delete:
    target: str


@dataclasses.dataclass(frozen=True, slots=True)
class SenderKey:
    conversation: str
    distribution: Distribution


@dataclasses.dataclass(frozen=True, slots=True)
class SenderKeyRequest:
    conversation: str
    device: str  # the device whose sender key is missing
    chain_id: int


Content = Text | Edit | Reaction | Delete | SenderKey | SenderKeyRequest


# -- padding ---------------------------------------------------------------------------------


def padme(length: int) -> int:
    if length < 2:
        return length
    e = length.bit_length() - 1
    s = e.bit_length()
    mask = (1 << (e - s)) - 1
    return (length + mask) & ~mask


def pad(data: bytes) -> bytes:
    size = max(MIN_PADDED, padme(len(data) + 1))
    return data + b"\x80" + b"\x00" * (size - len(data) - 1)


def unpad(data: bytes) -> bytes:
    end = len(data.rstrip(b"\x00"))
    if end == 0 or data[end - 1] != 0x80:
        raise ContentError("malformed plaintext: bad padding")
    return data[:end - 1]


# -- encoding --------------------------------------------------------------------------------


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _to_dict(c: Content) -> dict[str, Any]:
    match c:
        case Text(body):
            return {"kind": "text", "body": body}
        case Edit(target, body):
            return {"kind": "edit", "target": target, "body": body}
        case Reaction(target, emoji, remove):
            return {"kind": "react", "target": target, "emoji": emoji, "remove": remove}
        case Delete(target):
            return {"kind": "delete", "target": target}
        case SenderKey(conversation, d):
            return {"kind": "sender_key", "conversation": conversation, "chainId": d.chain_id,
                    "iteration": d.iteration, "chainKey": _b64(d.chain_key),
                    "signingKey": _b64(d.signing_key)}
        case SenderKeyRequest(conversation, device, chain_id):
            return {"kind": "sender_key_request", "conversation": conversation,
                    "device": device, "chainId": chain_id}
    raise TypeError(f"not a content type: {type(c).__name__}")


def validate(c: Content) -> Content:
    """Limits a sender must respect (and a receiver enforces)."""
    body = getattr(c, "body", None)
    if body is not None:
        if not body.strip():
            raise ContentError("message text is empty")
        if len(body) > MAX_BODY_CHARS:
            raise ContentError(f"message text is longer than {MAX_BODY_CHARS} characters")
    target = getattr(c, "target", None)
    if target is not None:
        try:
            uuid.UUID(target)
        except ValueError:
            raise ContentError(f"{target!r} is not a message id") from None
    if isinstance(c, Reaction) and not 0 < len(c.emoji) <= MAX_EMOJI_CHARS:
        raise ContentError("a reaction is one emoji")
    return c


def encode(c: Content) -> bytes:
    validate(c)
    raw = json.dumps({"v": VERSION, **_to_dict(c)}, ensure_ascii=False,
                     separators=(",", ":")).encode()
    padded = pad(raw)
    if len(padded) > MAX_PADDED:
        raise ContentError("message is too large")
    return padded


def _str(d: dict[str, Any], key: str) -> str:
    v = d.get(key)
    if not isinstance(v, str):
        raise ContentError(f"malformed plaintext: {key} must be a string")
    return v


def _int(d: dict[str, Any], key: str) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 0xFFFFFFFF:
        raise ContentError(f"malformed plaintext: {key} must be a 32-bit unsigned integer")
    return v


def _bytes(d: dict[str, Any], key: str) -> bytes:
    try:
        return base64.b64decode(_str(d, key), validate=True)
    except binascii.Error:
        raise ContentError(f"malformed plaintext: {key} must be base64") from None


def decode(data: bytes) -> Content:
    if len(data) > MAX_PADDED + 4096:
        raise ContentError("malformed plaintext: too large")
    try:
        d = json.loads(unpad(data).decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ContentError("malformed plaintext: not the Zynk format") from None
    if not isinstance(d, dict):
        raise ContentError("malformed plaintext: not an object")
    version = d.get("v")
    if not isinstance(version, int) or version < 1:
        raise ContentError("malformed plaintext: no version")
    if version > VERSION:
        raise UnsupportedContent(f"message format v{version} is newer than this client; "
                                 "update Zynk to read it")
    kind = d.get("kind")
    match kind:
        case "text":
            c: Content = Text(_str(d, "body"))
        case "edit":
            c = Edit(_str(d, "target"), _str(d, "body"))
        case "react":
            remove = d.get("remove", False)
            if not isinstance(remove, bool):
                raise ContentError("malformed plaintext: remove must be a boolean")
            c = Reaction(_str(d, "target"), _str(d, "emoji"), remove)
        case "delete":
            c = Delete(_str(d, "target"))
        case "sender_key":
            c = SenderKey(_str(d, "conversation"), Distribution(
                _int(d, "chainId"), _int(d, "iteration"), _bytes(d, "chainKey"),
                _bytes(d, "signingKey")))
        case "sender_key_request":
            c = SenderKeyRequest(_str(d, "conversation"), _str(d, "device"),
                                 _int(d, "chainId"))
        case _:
            raise UnsupportedContent(f"unknown message kind {kind!r}; update Zynk to read it")
    return validate(c)
