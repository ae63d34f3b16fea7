"""Resource names of the auth API (`users/{user}`, `users/{user}/devices/{device}`): parsing
and formatting only. `me` is kept as given; the domain resolves it to the caller."""

from __future__ import annotations

import re

from services.runtime.errors import InvalidArgument

ME = "me"
_SEG = r"([A-Za-z0-9-]{1,64})"
_USER = re.compile(rf"^users/{_SEG}$")
_DEVICE = re.compile(rf"^users/{_SEG}/devices/{_SEG}$")
_PREKEY_STATUS = re.compile(rf"^users/{_SEG}/devices/{_SEG}/prekeyStatus$")


def _bad(field: str, value: str, pattern: str) -> InvalidArgument:
    return InvalidArgument(f"{field} must look like {pattern}, got {value!r}",
                           field_violations=[(field, f"must look like {pattern}")],
                           reason="INVALID_NAME")


def parse_user(name: str, field: str) -> str:
    m = _USER.match(name)
    if not m:
        raise _bad(field, name, "users/{user}")
    return m.group(1)


def parse_device(name: str, field: str) -> tuple[str, str]:
    m = _DEVICE.match(name)
    if not m:
        raise _bad(field, name, "users/{user}/devices/{device}")
    return m.group(1), m.group(2)


def parse_prekey_status(name: str, field: str) -> tuple[str, str]:
    m = _PREKEY_STATUS.match(name)
    if not m:
        raise _bad(field, name, "users/{user}/devices/{device}/prekeyStatus")
    return m.group(1), m.group(2)


def user_name(user_id: str) -> str:
    return f"users/{user_id}"


def device_name(user_id: str, device_id: str) -> str:
    return f"users/{user_id}/devices/{device_id}"
