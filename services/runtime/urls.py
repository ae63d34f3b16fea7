"""Server URLs as they may be shown: in banners, errors and logs."""

from __future__ import annotations

import urllib.parse

# Query parameters libpq and redis-py accept that carry a secret.
_SECRET_PARAMS = {"password", "pass", "sslpassword"}


def redact_url(url: str) -> str:
    """The URL with its password masked, in the user part and in the query string."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is not None:
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    if parts.query:
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if any(k.lower() in _SECRET_PARAMS for k, _ in query):
            parts = parts._replace(query=urllib.parse.urlencode(
                [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in query],
                safe="*"))
    return urllib.parse.urlunsplit(parts)
