"""google.rpc.Status JSON -> typed SDK exceptions with messages fit for a user."""

import pytest

from clients.sdk import errors as E
from clients.sdk.transport import api_error

INFO = "type.googleapis.com/google.rpc.ErrorInfo"


def status(code, message, *details):
    return {"code": code, "message": message, "details": list(details)}


def test_device_mismatch_carries_the_device_lists():
    err = api_error(status(9, "envelopes do not match the conversation's devices", {
        "@type": INFO, "reason": "DEVICE_MISMATCH", "domain": "zynk.dev",
        "metadata": {"missing_devices": "users/a/devices/1,users/a/devices/2",
                     "extra_devices": "users/b/devices/9"}}), 400)
    assert isinstance(err, E.DeviceMismatch)
    assert err.missing == ["users/a/devices/1", "users/a/devices/2"]
    assert err.extra == ["users/b/devices/9"]


def test_rate_limit_with_retry_info_or_header():
    err = api_error(status(8, "too many sends", {
        "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.500s"}), 429)
    assert isinstance(err, E.RateLimited) and err.retry_after_s == 2.5
    assert str(err) == "rate limited: too many sends; retry in 2 s"
    err = api_error(status(8, "slow down"), 429, retry_after="7")
    assert err.retry_after_s == 7.0


def test_validation_errors_name_the_fields_once():
    err = api_error(status(3, "invalid request", {
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{"field": "username", "description": "too short"}]}), 400)
    assert isinstance(err, E.InvalidArgument) and err.exit_code == 2
    assert str(err) == "invalid request (username: too short)"
    assert err.field_violations == [("username", "too short")]


@pytest.mark.parametrize("code,cls", [
    (16, E.NotAuthenticated), (7, E.PermissionDenied), (5, E.NotFound),
    (6, E.AlreadyExists), (12, E.Unimplemented), (14, E.Unavailable), (13, E.ServerError),
    (2, E.ServerError), (4, E.Unavailable),
])
def test_codes(code, cls):
    assert type(api_error(status(code, "m"), 500)) is cls


def test_a_revoked_or_reused_session_means_log_in_again():
    err = api_error(status(16, "this device has been revoked",
                           {"@type": INFO, "reason": "DEVICE_REVOKED"}), 401)
    assert isinstance(err, E.SessionExpired) and "log in again" in str(err)


def test_unimplemented_names_what_is_missing():
    err = api_error(status(12, "not implemented"), 501, what="groups")
    assert str(err) == "the server does not offer groups yet (not implemented)"


@pytest.mark.parametrize("body", [None, "<html>bad gateway</html>", {"error": 1}, [1]])
def test_non_status_bodies(body):
    err = api_error(body, 502)
    assert isinstance(err, E.ServerError) and "HTTP 502" in str(err)
    assert isinstance(api_error(body, 503), E.Unavailable)
