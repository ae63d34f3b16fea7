"""List paging (AIP-158) as every service does it: the page size a request may ask for, and
page tokens, opaque strings a client hands back for the next page.

A token is a small JSON object, unpadded base64url. What the object holds (the keyset
position, and what ties it to the request it came from) is each listing's own; a token that
does not decode, or that its listing finds does not belong to the request, is refused with
`invalid_token()`."""

from __future__ import annotations

import base64
import json
from typing import Any

from services.runtime.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


def page_size(requested: int) -> int:
    """The rows to return for a request's page_size: 0 means the default; capped."""
    if requested < 0:
        raise InvalidArgument("page_size must not be negative",
                              field_violations=[("page_size", "must be >= 0")])
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(fields: dict[str, Any]) -> str:
    raw = json.dumps(fields, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_token(token: str) -> dict[str, Any]:
    """The object in `token`; `invalid_token()` when it is not one of ours at all."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:  # also binascii.Error and UnicodeDecodeError
        raise invalid_token() from None
    if not isinstance(data, dict):
        raise invalid_token()
    return data


def invalid_token() -> InvalidArgument:
    return InvalidArgument("page_token is not valid for this request",
                           field_violations=[("page_token", "not a token from a previous page "
                                              "of the same request")],
                           reason="INVALID_PAGE_TOKEN")
