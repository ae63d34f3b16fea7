"""Every failure the SDK reports, as typed exceptions with messages fit to show a user.

The CLI prints `str(error)` on one line and exits with `error.exit_code`; nothing here ever
carries plaintext, keys or tokens in its message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# gRPC status codes (google.rpc.Code), as they appear in google.rpc.Status JSON.
OK, CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND = 0, 1, 2, 3, 4, 5
ALREADY_EXISTS, PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION = 6, 7, 8, 9
ABORTED, OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS = 10, 11, 12, 13, 14, 15
UNAUTHENTICATED = 16


class ZynkError(Exception):
    """Base of every expected failure."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- local -------------------------------------------------------------------------------------


class ProfileError(ZynkError):
    """The local profile cannot be used as asked (missing, already logged in, locked...)."""

    exit_code = 3


class NotLoggedIn(ProfileError):
    pass


class ProfileLocked(ProfileError):
    pass


class WrongPassphrase(ProfileError):
    pass


class StateCorrupted(ProfileError):
    pass


class ContentError(ZynkError):
    """A decrypted plaintext that is malformed, or too large to send."""


class UnsupportedContent(ContentError):
    """A plaintext of a newer format version or an unknown kind."""


# -- crypto ------------------------------------------------------------------------------------


class CryptoError(ZynkError):
    exit_code = 5


class PeerHasNoKeys(CryptoError):
    """The recipient (or one of its devices) has not published X3DH keys."""


class SessionBroken(CryptoError):
    """A message could not be decrypted with any session (or the session cannot start)."""


class DuplicateMessage(SessionBroken):
    """The message key was already used: a replay or a duplicate delivery."""


class IdentityKeyChanged(CryptoError):
    """A device presented a different identity key than the one seen before."""


class MissingSenderKey(SessionBroken):
    """A group message under a sender key this device never received."""


# -- server ------------------------------------------------------------------------------------


class ServerUnreachable(ZynkError):
    exit_code = 4


class ApiError(ZynkError):
    """The server answered with a google.rpc.Status error."""

    exit_code = 1

    def __init__(self, message: str, *, code: int = UNKNOWN, http_status: int = 0,
                 reason: str = "", metadata: Mapping[str, str] | None = None,
                 field_violations: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status
        self.reason = reason
        self.metadata = dict(metadata or {})
        self.field_violations = list(field_violations)


class InvalidArgument(ApiError):
    exit_code = 2


class NotAuthenticated(ApiError):
    exit_code = 3


class SessionExpired(NotAuthenticated):
    """The device's session is over (revoked, refresh token expired or reused): log in again."""


class PermissionDenied(ApiError):
    pass


class NotFound(ApiError):
    pass


class AlreadyExists(ApiError):
    pass


class FailedPrecondition(ApiError):
    pass


class DeviceMismatch(FailedPrecondition):
    """SendMessage's envelopes do not cover exactly the conversation's active devices."""

    def __init__(self, message: str, *, missing: Sequence[str], extra: Sequence[str],
                 **kw) -> None:
        super().__init__(message, **kw)
        self.missing = list(missing)
        self.extra = list(extra)


class RateLimited(ApiError):
    def __init__(self, message: str, *, retry_after_s: float | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.retry_after_s = retry_after_s


class Unimplemented(ApiError):
    """The server does not offer this yet (a service that has not landed)."""

    exit_code = 4


class Unavailable(ApiError):
    exit_code = 4


class ServerError(ApiError):
    exit_code = 4


# Errors worth retrying later without changing anything.
TRANSIENT = (ServerUnreachable, Unavailable, RateLimited, ServerError)
