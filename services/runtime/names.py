"""Resource names (AIP-122) every service uses: templates such as `users/{user}/devices/{device}`
parsed into their ids and formatted back, with one error for a name that does not fit.

The contract's buf.validate patterns have already run on requests; parsing still refuses
what does not fit, so an id never reaches a store unchecked. `users/me` parses like any id
(`ME`); each domain resolves it to the caller."""

from __future__ import annotations

import re

from services.runtime.errors import InvalidArgument

ME = "me"
SEGMENT = r"[A-Za-z0-9-]{1,64}"
_VAR = re.compile(r"\{(\w+)\}")


class NameTemplate:
    def __init__(self, template: str) -> None:
        self.template = template
        self._re = re.compile("^" + _VAR.sub(f"({SEGMENT})", template) + "$")
        self._fmt = _VAR.sub("{}", template)

    def match(self, name: str) -> tuple[str, ...] | None:
        m = self._re.match(name)
        return None if m is None else m.groups()

    def parse(self, name: str, field: str) -> tuple[str, ...]:
        """The ids in `name`; INVALID_ARGUMENT naming `field` when it does not fit."""
        ids = self.match(name)
        if ids is None:
            raise InvalidArgument(
                f"{field} must look like {self.template}, got {name[:100]!r}",
                field_violations=[(field, f"must look like {self.template}")],
                reason="INVALID_NAME")
        return ids

    def parse_id(self, name: str, field: str) -> str:
        """For single-id templates: the id."""
        (only,) = self.parse(name, field)
        return only

    def format(self, *ids: str) -> str:
        return self._fmt.format(*ids)


USER = NameTemplate("users/{user}")
DEVICE = NameTemplate("users/{user}/devices/{device}")
PREKEY_STATUS = NameTemplate("users/{user}/devices/{device}/prekeyStatus")
PRESENCE = NameTemplate("users/{user}/presence")
CONVERSATION = NameTemplate("conversations/{conversation}")
MESSAGE = NameTemplate("conversations/{conversation}/messages/{message}")
RECEIPT = NameTemplate("conversations/{conversation}/messages/{message}/receipts/{receipt}")
GROUP = NameTemplate("groups/{group}")
MEMBER = NameTemplate("groups/{group}/members/{member}")
INVITE = NameTemplate("groups/{group}/invites/{invite}")
