"""Resource names of the auth API (`users/{user}`, `users/{user}/devices/{device}`), on the
runtime's templates. `me` is kept as given; the domain resolves it to the caller."""

from __future__ import annotations

from services.runtime.names import DEVICE, ME, PREKEY_STATUS, USER

__all__ = ["ME", "parse_user", "parse_device", "parse_prekey_status", "user_name",
           "device_name"]


def parse_user(name: str, field: str) -> str:
    return USER.parse_id(name, field)


def parse_device(name: str, field: str) -> tuple[str, str]:
    user, device = DEVICE.parse(name, field)
    return user, device


def parse_prekey_status(name: str, field: str) -> tuple[str, str]:
    user, device = PREKEY_STATUS.parse(name, field)
    return user, device


user_name = USER.format
device_name = DEVICE.format
