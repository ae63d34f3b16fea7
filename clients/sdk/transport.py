"""Every call the SDK makes to the server over REST, in one place (docs/client.md lists them).

Requests and responses are the generated proto classes, converted with
google.protobuf.json_format (proto3 JSON, what the gateway speaks); unknown response fields
are ignored so a newer server with additive fields does not break an older client.

Tokens: an access token close to expiry (or refused as expired) is renewed with the refresh
token first; refresh tokens are single use, so the new pair is handed to `on_tokens` (the
client persists it) before anything else happens. Errors become the typed exceptions of
errors.py, built from the google.rpc.Status body (ErrorInfo reason and metadata, BadRequest
field violations, RetryInfo / Retry-After).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import httpx
from google.protobuf import json_format
from google.protobuf.message import Message

from clients.sdk import errors as E
from clients.sdk.state import Tokens
from zynk.auth.v1 import auth_pb2 as auth
from zynk.group.v1 import group_pb2 as grp
from zynk.messaging.v1 import messaging_pb2 as msg
from zynk.presence.v1 import presence_pb2 as presence

M = TypeVar("M", bound=Message)
DEFAULT_SERVER = "http://127.0.0.1:8080"
REFRESH_MARGIN_S = 60.0
MAX_PAGES = 100

_CODE_CLASS: dict[int, type[E.ApiError]] = {
    E.INVALID_ARGUMENT: E.InvalidArgument, E.OUT_OF_RANGE: E.InvalidArgument,
    E.UNAUTHENTICATED: E.NotAuthenticated, E.PERMISSION_DENIED: E.PermissionDenied,
    E.NOT_FOUND: E.NotFound, E.ALREADY_EXISTS: E.AlreadyExists,
    E.FAILED_PRECONDITION: E.FailedPrecondition, E.ABORTED: E.FailedPrecondition,
    E.RESOURCE_EXHAUSTED: E.RateLimited, E.UNIMPLEMENTED: E.Unimplemented,
    E.UNAVAILABLE: E.Unavailable, E.DEADLINE_EXCEEDED: E.Unavailable,
}
_HTTP_CODE = {400: E.INVALID_ARGUMENT, 401: E.UNAUTHENTICATED, 403: E.PERMISSION_DENIED,
              404: E.NOT_FOUND, 409: E.ALREADY_EXISTS, 429: E.RESOURCE_EXHAUSTED,
              501: E.UNIMPLEMENTED, 503: E.UNAVAILABLE, 504: E.DEADLINE_EXCEEDED}
_SESSION_OVER = {"DEVICE_REVOKED", "REFRESH_TOKEN_REUSED", "REFRESH_TOKEN_EXPIRED",
                 "REFRESH_TOKEN_INVALID"}


def _duration_s(text: Any) -> float | None:
    if isinstance(text, str) and text.endswith("s"):
        try:
            return float(text[:-1])
        except ValueError:
            return None
    return None


def api_error(status: dict[str, Any] | None, http_status: int = 0,
              retry_after: str | None = None, what: str = "") -> E.ApiError:
    """A google.rpc.Status JSON body -> the matching typed exception."""
    if not isinstance(status, dict) or not isinstance(status.get("code"), int):
        code = _HTTP_CODE.get(http_status, E.INTERNAL)
        message = f"the server answered HTTP {http_status}"
        details: list[Any] = []
    else:
        code = status["code"]
        message = str(status.get("message") or "") or f"error code {code}"
        details = status.get("details") or []
    reason, metadata, violations, retry = "", {}, [], None
    for d in details if isinstance(details, list) else []:
        if not isinstance(d, dict):
            continue
        kind = str(d.get("@type", ""))
        if kind.endswith("google.rpc.ErrorInfo"):
            reason = str(d.get("reason", ""))
            metadata = {str(k): str(v) for k, v in (d.get("metadata") or {}).items()}
        elif kind.endswith("google.rpc.BadRequest"):
            violations = [(str(v.get("field", "")), str(v.get("description", "")))
                          for v in d.get("fieldViolations") or [] if isinstance(v, dict)]
        elif kind.endswith("google.rpc.RetryInfo"):
            retry = _duration_s(d.get("retryDelay"))
    if retry is None and retry_after:
        try:
            retry = float(retry_after)
        except ValueError:
            retry = None
    kw = dict(code=code, http_status=http_status, reason=reason, metadata=metadata,
              field_violations=violations)
    extra = [f"{f}: {d}" for f, d in violations if d and d not in message]
    if extra and code == E.INVALID_ARGUMENT:
        message += " (" + "; ".join(extra) + ")"
    if code == E.FAILED_PRECONDITION and reason == "DEVICE_MISMATCH":
        def split(key: str) -> list[str]:
            return [x for x in metadata.get(key, "").split(",") if x]
        return E.DeviceMismatch(message, missing=split("missing_devices"),
                                extra=split("extra_devices"), **kw)
    if code == E.RESOURCE_EXHAUSTED:
        wait = f"; retry in {retry:.0f} s" if retry is not None else ""
        return E.RateLimited(f"rate limited: {message}{wait}", retry_after_s=retry, **kw)
    if code == E.UNIMPLEMENTED:
        label = what or "this"
        return E.Unimplemented(f"the server does not offer {label} yet ({message})", **kw)
    if code == E.UNAUTHENTICATED and reason in _SESSION_OVER:
        return E.SessionExpired(f"{message}: log in again (`zynk login`)", **kw)
    return _CODE_CLASS.get(code, E.ServerError)(message, **kw)


def _pb(response: Any, cls: type[M]) -> M:
    try:
        return json_format.ParseDict(response, cls(), ignore_unknown_fields=True)
    except json_format.ParseError as e:
        raise E.ServerError(f"the server sent a malformed {cls.DESCRIPTOR.name}") from e


def _json(m: Message) -> dict[str, Any]:
    return json_format.MessageToDict(m)


def _seconds(ts: Any) -> float:
    return ts.seconds + ts.nanos / 1e9


def tokens_from(pair: auth.TokenPair) -> Tokens:
    return Tokens(pair.access_token, _seconds(pair.access_token_expire_time),
                  pair.refresh_token, _seconds(pair.refresh_token_expire_time))


class Transport:
    def __init__(self, server: str = DEFAULT_SERVER, *, tokens: Tokens | None = None,
                 on_tokens: Callable[[Tokens], Awaitable[None]] | None = None,
                 timeout: float = 20.0) -> None:
        self.server = server.rstrip("/")
        self.tokens = tokens
        self._on_tokens = on_tokens
        self._http = httpx.AsyncClient(base_url=self.server, timeout=timeout,
                                       headers={"user-agent": "zynk-sdk/1"})
        self._refresh_lock = asyncio.Lock()

    async def close(self) -> None:
        await self._http.aclose()

    # -- plumbing --------------------------------------------------------------------------

    async def access_token(self) -> str:
        """A valid access token (refreshed first when close to expiry)."""
        return (await self._authorization()).removeprefix("Bearer ")

    async def _authorization(self) -> str:
        if self.tokens is None:
            raise E.NotLoggedIn("not logged in; run `zynk login` first")
        if self.tokens.access_expire - time.time() < REFRESH_MARGIN_S:
            await self.refresh()
        return f"Bearer {self.tokens.access_token}"

    async def _send(self, method: str, path: str, *, body: dict[str, Any] | None,
                    params: Any, auth_needed: bool) -> httpx.Response:
        headers = {}
        if auth_needed:
            headers["authorization"] = await self._authorization()
        try:
            return await self._http.request(method, path, json=body, params=params,
                                            headers=headers)
        except httpx.TimeoutException as e:
            raise E.ServerUnreachable(f"the Zynk server at {self.server} did not answer in "
                                      "time") from e
        except httpx.HTTPError as e:
            raise E.ServerUnreachable(f"cannot reach the Zynk server at {self.server} "
                                      f"({type(e).__name__})") from e

    async def call(self, method: str, path: str, response: type[M], *,
                   body: Message | dict[str, Any] | None = None, params: Any = None,
                   auth_needed: bool = True, what: str = "") -> M:
        data = _json(body) if isinstance(body, Message) else body
        if method in ("POST", "PATCH") and data is None:
            data = {}
        for attempt in (0, 1):
            r = await self._send(method, path, body=data, params=params,
                                 auth_needed=auth_needed)
            if r.status_code == 200:
                try:
                    return _pb(r.json(), response)
                except ValueError as e:
                    raise E.ServerError("the server sent a response that is not JSON") from e
            err = self._error(r, what)
            if (attempt == 0 and auth_needed and isinstance(err, E.NotAuthenticated)
                    and err.reason == "TOKEN_EXPIRED"):
                await self.refresh(force=True)
                continue
            raise err
        raise AssertionError("unreachable")

    def _error(self, r: httpx.Response, what: str) -> E.ApiError:
        try:
            status = r.json()
        except ValueError:
            status = None
        return api_error(status, r.status_code, r.headers.get("retry-after"), what)

    async def refresh(self, force: bool = False) -> Tokens:
        async with self._refresh_lock:
            tokens = self.tokens
            if tokens is None:
                raise E.NotLoggedIn("not logged in; run `zynk login` first")
            if not force and tokens.access_expire - time.time() >= REFRESH_MARGIN_S:
                return tokens  # someone else refreshed while we waited
            if tokens.refresh_expire <= time.time():
                raise E.SessionExpired("this device's session has expired: log in again "
                                       "(`zynk login`)")
            resp = await self.call("POST", "/api/v1/auth/refresh", auth.RefreshTokenResponse,
                                   body=auth.RefreshTokenRequest(
                                       refresh_token=tokens.refresh_token),
                                   auth_needed=False)
            self.tokens = tokens_from(resp.tokens)
            if self._on_tokens is not None:
                await self._on_tokens(self.tokens)
            return self.tokens

    async def _pages(self, path: str, response: type[M], field: str,
                     params: dict[str, Any] | None = None, what: str = "") -> list[Any]:
        out: list[Any] = []
        token = ""
        for _ in range(MAX_PAGES):
            p = dict(params or {}, pageSize=100)
            if token:
                p["pageToken"] = token
            page = await self.call("GET", path, response, params=p, what=what)
            out.extend(getattr(page, field))
            token = page.next_page_token
            if not token:
                return out
        return out

    # -- auth ------------------------------------------------------------------------------

    async def register(self, username: str, password: str, display_name: str = "") -> auth.User:
        r = await self.call("POST", "/api/v1/auth/register", auth.RegisterResponse,
                            body=auth.RegisterRequest(username=username, password=password,
                                                      display_name=display_name),
                            auth_needed=False)
        return r.user

    async def login(self, username: str, password: str, device_name: str) -> auth.LoginResponse:
        r = await self.call("POST", "/api/v1/auth/login", auth.LoginResponse,
                            body=auth.LoginRequest(username=username, password=password,
                                                   device_display_name=device_name),
                            auth_needed=False)
        self.tokens = tokens_from(r.tokens)
        return r

    async def logout(self) -> None:
        await self.call("POST", "/api/v1/auth/logout", auth.LogoutResponse)

    async def get_user(self, name: str) -> auth.User:
        return await self.call("GET", f"/api/v1/{name}", auth.User)

    async def lookup_user(self, username: str) -> auth.User:
        return await self.call("GET", "/api/v1/users:lookup", auth.User,
                               params={"username": username})

    async def list_devices(self, show_revoked: bool = False) -> list[auth.Device]:
        return await self._pages("/api/v1/users/me/devices", auth.ListDevicesResponse,
                                 "devices", {"showRevoked": str(show_revoked).lower()})

    async def rename_device(self, name: str, display_name: str) -> auth.Device:
        return await self.call("PATCH", f"/api/v1/{name}", auth.Device,
                               body={"displayName": display_name},
                               params={"updateMask": "displayName"})

    async def revoke_device(self, name: str) -> auth.Device:
        r = await self.call("POST", f"/api/v1/{name}:revoke", auth.RevokeDeviceResponse)
        return r.device

    async def publish_keys(self, device: str, identity_key: bytes,
                           signed_prekey: auth.SignedPrekey | None,
                           one_time_prekeys: Sequence[auth.OneTimePrekey]) -> int:
        req = auth.PublishDeviceKeysRequest(device=device, identity_key=identity_key,
                                            one_time_prekeys=one_time_prekeys)
        if signed_prekey is not None:
            req.signed_prekey.CopyFrom(signed_prekey)
        r = await self.call("POST", f"/api/v1/{device}:publishKeys",
                            auth.PublishDeviceKeysResponse, body=req)
        return r.one_time_prekey_count

    async def claim_key_bundles(self, user: str, devices: Sequence[str] = ()
                                ) -> list[auth.KeyBundle]:
        r = await self.call("POST", f"/api/v1/{user}:claimKeyBundles",
                            auth.ClaimKeyBundlesResponse,
                            body=auth.ClaimKeyBundlesRequest(user=user, devices=devices))
        return list(r.bundles)

    async def prekey_status(self, device: str) -> auth.GetPrekeyStatusResponse:
        return await self.call("GET", f"/api/v1/{device}/prekeyStatus",
                               auth.GetPrekeyStatusResponse)

    # -- messaging -------------------------------------------------------------------------

    async def direct_conversation(self, user: str) -> msg.Conversation:
        conv = msg.Conversation(type=msg.Conversation.TYPE_DIRECT, participants=[user])
        return await self.call("POST", "/api/v1/conversations", msg.Conversation, body=conv,
                               what="messaging")

    async def get_conversation(self, name: str) -> msg.Conversation:
        return await self.call("GET", f"/api/v1/{name}", msg.Conversation, what="messaging")

    async def list_conversations(self) -> list[msg.Conversation]:
        return await self._pages("/api/v1/conversations", msg.ListConversationsResponse,
                                 "conversations", what="messaging")

    async def send_message(self, req: msg.SendMessageRequest) -> msg.Message:
        r = await self.call("POST", f"/api/v1/{req.parent}/messages:send",
                            msg.SendMessageResponse, body=req, what="messaging")
        return r.message

    async def list_messages(self, conversation: str, min_sequence: int = 0,
                            max_sequence: int = 0) -> list[msg.Message]:
        params = {"orderBy": "sequence", "minSequence": min_sequence,
                  "maxSequence": max_sequence}
        return await self._pages(f"/api/v1/{conversation}/messages",
                                 msg.ListMessagesResponse, "messages", params, "messaging")

    async def delete_message(self, name: str) -> msg.Message:
        return await self.call("DELETE", f"/api/v1/{name}", msg.Message, what="messaging")

    async def mark_read(self, conversation: str, read_sequence: int) -> int:
        r = await self.call("POST", f"/api/v1/{conversation}:markRead", msg.MarkReadResponse,
                            body=msg.MarkReadRequest(conversation=conversation,
                                                     read_sequence=read_sequence),
                            what="messaging")
        return r.read_sequence

    async def acknowledge(self, device: str, cursor: str) -> int:
        r = await self.call("POST", f"/api/v1/{device}/inbox:acknowledge",
                            msg.AcknowledgeDeliveriesResponse,
                            body=msg.AcknowledgeDeliveriesRequest(device=device, cursor=cursor),
                            what="messaging")
        return r.pending_count

    async def subscribe(self, device: str, after_cursor: str = ""
                        ) -> AsyncIterator[msg.SubscribeResponse]:
        """The inbox as newline-delimited JSON (the REST form of Subscribe)."""
        headers = {"authorization": await self._authorization()}
        params = {"afterCursor": after_cursor} if after_cursor else None
        timeout = httpx.Timeout(20.0, read=None)
        try:
            async with self._http.stream("GET", f"/api/v1/{device}/inbox:subscribe",
                                         params=params, headers=headers,
                                         timeout=timeout) as r:
                if r.status_code != 200:
                    await r.aread()
                    raise self._error(r, "the inbox (messaging)")
                async for line in r.aiter_lines():
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except ValueError as e:
                        raise E.ServerError("the inbox stream sent a malformed line") from e
                    if isinstance(obj, dict) and set(obj) == {"error"}:
                        raise api_error(obj["error"], 200, what="the inbox (messaging)")
                    yield _pb(obj, msg.SubscribeResponse)
        except httpx.TimeoutException as e:
            raise E.ServerUnreachable(f"the Zynk server at {self.server} did not answer in "
                                      "time") from e
        except httpx.HTTPError as e:
            raise E.ServerUnreachable(f"lost the connection to {self.server} "
                                      f"({type(e).__name__})") from e

    # -- groups ----------------------------------------------------------------------------

    async def create_group(self, display_name: str, members: Sequence[str] = ()) -> grp.Group:
        r = await self.call("POST", "/api/v1/groups", grp.CreateGroupResponse,
                            body=grp.CreateGroupRequest(
                                group=grp.Group(display_name=display_name),
                                initial_members=members), what="groups")
        return r.group

    async def get_group(self, name: str) -> grp.Group:
        return await self.call("GET", f"/api/v1/{name}", grp.Group, what="groups")

    async def list_groups(self) -> list[grp.Group]:
        return await self._pages("/api/v1/groups", grp.ListGroupsResponse, "groups",
                                 what="groups")

    async def list_members(self, group: str) -> list[grp.Member]:
        return await self._pages(f"/api/v1/{group}/members", grp.ListMembersResponse,
                                 "members", what="groups")

    async def add_members(self, group: str, users: Sequence[str]) -> list[grp.Member]:
        r = await self.call("POST", f"/api/v1/{group}:addMembers", grp.AddMembersResponse,
                            body=grp.AddMembersRequest(group=group, users=users), what="groups")
        return list(r.members)

    async def remove_members(self, group: str, users: Sequence[str]) -> int:
        r = await self.call("POST", f"/api/v1/{group}:removeMembers",
                            grp.RemoveMembersResponse,
                            body=grp.RemoveMembersRequest(group=group, users=users),
                            what="groups")
        return r.removed_count

    async def create_invite(self, group: str, max_uses: int = 0) -> grp.Invite:
        return await self.call("POST", f"/api/v1/{group}/invites", grp.Invite,
                               body=grp.Invite(max_uses=max_uses), what="groups")

    async def join_group(self, token: str) -> grp.JoinGroupResponse:
        return await self.call("POST", "/api/v1/groups:join", grp.JoinGroupResponse,
                               body=grp.JoinGroupRequest(invite_token=token), what="groups")

    async def leave_group(self, group: str) -> grp.LeaveGroupResponse:
        return await self.call("POST", f"/api/v1/{group}:leave", grp.LeaveGroupResponse,
                               body=grp.LeaveGroupRequest(name=group), what="groups")

    # -- presence --------------------------------------------------------------------------

    async def set_typing(self, conversation: str, typing: bool) -> None:
        await self.call("POST", f"/api/v1/{conversation}:setTyping",
                        presence.SetTypingResponse,
                        body=presence.SetTypingRequest(conversation=conversation,
                                                       typing=typing), what="presence")
