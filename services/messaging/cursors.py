"""Inbox cursors and list page tokens: opaque strings a client hands back.

A cursor names one position in one device's inbox: the per-device sequence the entry got when
it was queued. It carries a short tag of the device id so a cursor of another device (or a
mangled one) is refused instead of silently acknowledging the wrong entries; nothing secret
rides on it (the caller is authorised separately).

Page tokens (AIP-158) carry a keyset position and a digest of the request they belong to, so
a token replayed with different filters, order or caller is refused."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import struct
from typing import Any

from services.runtime import paging
from services.runtime.errors import InvalidArgument

_CURSOR_VERSION = 1
_CURSOR = struct.Struct(">BQ4s")


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@functools.lru_cache(maxsize=65536)
def _device_tag(device_id: str) -> bytes:
    return hashlib.sha256(device_id.encode()).digest()[:4]


def encode_cursor(device_id: str, seq: int) -> str:
    return _b64e(_CURSOR.pack(_CURSOR_VERSION, seq, _device_tag(device_id)))


def decode_cursor(device_id: str, cursor: str, field: str = "cursor") -> int:
    """The inbox sequence in `cursor`; INVALID_ARGUMENT unless it is a cursor of this device."""
    try:
        raw = _b64d(cursor)
        version, seq, tag = _CURSOR.unpack(raw)
    except (ValueError, binascii.Error, struct.error):
        version, seq, tag = -1, 0, b""
    if version != _CURSOR_VERSION or tag != _device_tag(device_id) or seq >= 2**63:
        raise InvalidArgument(f"{field} is not an inbox cursor of this device",
                              field_violations=[(field, "not a cursor this device received")],
                              reason="INVALID_CURSOR")
    return seq


def request_digest(*parts: Any) -> str:
    raw = json.dumps(parts, separators=(",", ":"), sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def encode_page_token(request: str, position: list) -> str:
    """`request` is request_digest() of everything that shapes the listing except the page."""
    return paging.encode_token({"r": request, "p": position})


def decode_page_token(token: str, request: str) -> list:
    data = paging.decode_token(token)
    position = data.get("p")
    if data.get("r") != request or not isinstance(position, list):
        raise paging.invalid_token()
    return position
