"""The auth rules: accounts, devices, tokens and X3DH key material.

Nothing here knows about gRPC or SQL: the servicer hands in plain values and the caller's
Principal, the store (store.py) holds the state, and errors are the runtime's domain errors.

Security-relevant choices, in one place:
- Passwords: argon2id with the configured cost; verifying an unknown account still runs
  argon2 against a dummy hash, and every credential failure has the same message, so neither
  timing nor wording reveals which usernames exist. Hashes are upgraded on login when the
  configured parameters changed.
- Refresh tokens are single use. Presenting a used one means two parties hold the family:
  the device is revoked (its refresh tokens deleted, its access tokens refused by every
  verifier through the RevocationList, its keys withdrawn) and the user logs in again.
- Revocations are written to the store before the RevocationList and the list is rebuilt
  from the store on start, so a restart never resurrects a revoked device's token.
- Signed prekeys must carry a valid Ed25519 signature by the device's identity key over the
  32 raw bytes of the prekey; one-time prekeys are claimed inside a write transaction so
  each is handed out at most once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Callable, Sequence

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.auth import names
from services.auth.profiles import UserProfiles
from services.auth.signing import TokenIssuer, new_refresh_token, refresh_token_hash
from services.auth.store import (
    AuthStore,
    AuthTx,
    DevicePage,
    DeviceRow,
    OneTimePrekeyRow,
    RefreshTokenRow,
    SignedPrekeyRow,
    UserRow,
)
from services.runtime import hints
from services.runtime import logging as zlog
from services.runtime import paging
from services.runtime.cache import Cache, MemoryCache
from services.runtime.config import Settings
from services.runtime.context import Principal
from services.runtime.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from services.runtime.events import envelope
from services.runtime.pbtime import timestamp
from services.runtime.ratelimit import RateLimiter, enforce
from services.runtime.pubsub import PubSub
from services.runtime.revocations import RevocationList
from services.runtime.tokens import LEEWAY_S
from zynk.auth.v1 import auth_pb2
from zynk.events.v1 import events_pb2

log = zlog.get("auth")

TOPIC_USERS_REGISTERED = "users.registered"
TOPIC_DEVICES_CHANGED = "devices.changed"
MAX_ACTIVE_DEVICE_USERS = 1000
INVALID_CREDENTIALS = "invalid username or password"
UPDATABLE_DEVICE_FIELDS = frozenset({"display_name"})


# -- results -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    access_token_expire_time: float
    refresh_token: str
    refresh_token_expire_time: float


@dataclasses.dataclass(frozen=True, slots=True)
class LoginResult:
    user: UserRow
    device: DeviceRow
    tokens: TokenPair


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceList:
    devices: list[DeviceRow]
    next_page_token: str


@dataclasses.dataclass(frozen=True, slots=True)
class KeyBundle:
    device: DeviceRow  # has identity_key and signed_prekey
    one_time_prekey: OneTimePrekeyRow | None


@dataclasses.dataclass(frozen=True, slots=True)
class PrekeyStatus:
    one_time_prekey_count: int
    signed_prekey: SignedPrekeyRow | None


@dataclasses.dataclass(frozen=True, slots=True)
class SignedPrekeyInput:
    key_id: int
    public_key: bytes
    signature: bytes


# -- passwords -------------------------------------------------------------------------------


class Passwords:
    """argon2id hashing off the event loop (argon2 is deliberately slow and CPU-bound)."""

    def __init__(self, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._hasher = argon2.PasswordHasher(time_cost=time_cost, memory_cost=memory_kib,
                                             parallelism=parallelism, type=argon2.Type.ID)
        # Made up front (once per process, at start) so that the first login for an unknown
        # account costs no more than any other.
        self._dummy = self._hasher.hash(uuid.uuid4().hex)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(password_hash, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False
        return await asyncio.to_thread(check)

    async def verify_dummy(self, password: str) -> None:
        """Spend the same work as a real verification, for accounts that do not exist."""
        await self.verify(self._dummy, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


# -- the domain ------------------------------------------------------------------------------


class AuthDomain:
    def __init__(self, store: AuthStore, issuer: TokenIssuer, limiter: RateLimiter,
                 revocations: RevocationList, settings: Settings,
                 clock: Callable[[], float] = time.time, pubsub: PubSub | None = None,
                 cache: Cache | None = None) -> None:
        self._store = store
        self._profiles = UserProfiles(store, MemoryCache() if cache is None else cache,
                                      settings.auth.profile_cache_ttl_s)
        self._issuer = issuer
        self._limiter = limiter
        self._revocations = revocations
        self._auth = settings.auth
        self._limits = settings.rate_limits
        self._clock = clock
        self._pubsub = pubsub
        self._passwords = Passwords(self._auth.argon2_time_cost, self._auth.argon2_memory_kib,
                                    self._auth.argon2_parallelism)

    # -- accounts ----------------------------------------------------------------------------

    async def register(self, username: str, password: str, display_name: str,
                       client_address: str) -> UserRow:
        await enforce(self._limiter, f"auth:register:addr:{client_address}",
                      self._limits.register_per_address, "registrations from this address")
        handle = username.lower()
        if handle in password.lower():
            raise InvalidArgument(
                "password must not contain the username",
                field_violations=[("password", "must not contain the username")],
                reason="PASSWORD_CONTAINS_USERNAME")
        if await self._store.get_user_by_username(handle) is not None:
            raise _username_taken(handle)
        user = UserRow(id=str(uuid.uuid4()), username=handle, display_name=display_name,
                       password_hash=await self._passwords.hash(password),
                       create_time=self._clock())
        async with self._store.transaction() as tx:
            if not await tx.insert_user(user):
                raise _username_taken(handle)
            event = _registered_event(user)
            await tx.add_event(TOPIC_USERS_REGISTERED, event.partition_key, event,
                               event.metadata.event_id)
        log.info("user registered", user_id=user.id)
        return user

    async def login(self, username: str, password: str, device_display_name: str,
                    client_address: str) -> LoginResult:
        handle = username.lower()
        await enforce(self._limiter, f"auth:login:addr:{client_address}",
                      self._limits.login_per_address, "login attempts from this address")
        await enforce(self._limiter, f"auth:login:user:{handle}",
                      self._limits.login_per_account, "login attempts for this account")
        user = await self._store.get_user_by_username(handle)
        if user is None:
            await self._passwords.verify_dummy(password)
            raise Unauthenticated(INVALID_CREDENTIALS, reason="INVALID_CREDENTIALS")
        if not await self._passwords.verify(user.password_hash, password):
            raise Unauthenticated(INVALID_CREDENTIALS, reason="INVALID_CREDENTIALS")
        new_hash = None
        if self._passwords.needs_rehash(user.password_hash):
            new_hash = await self._passwords.hash(password)
        now = self._clock()
        device = DeviceRow(id=str(uuid.uuid4()), user_id=user.id,
                           display_name=device_display_name, create_time=now,
                           last_seen_time=now)
        refresh, refresh_row = self._new_refresh_token(device, now)
        async with self._store.transaction() as tx:
            if new_hash is not None:
                await tx.set_password_hash(user.id, new_hash)
            await tx.insert_device(device)
            await tx.insert_refresh_token(refresh_row)
            await _add_device_event(tx, device, events_pb2.DeviceChanged.CHANGE_ADDED, now)
        if new_hash is not None:
            user = dataclasses.replace(user, password_hash=new_hash)
        await self._hint_devices_changed(user.id)
        log.info("login", user_id=user.id, device_id=device.id)
        return LoginResult(user, device, self._pair(device, refresh, refresh_row, now))

    async def refresh(self, refresh_token: str) -> TokenPair:
        token_hash = refresh_token_hash(refresh_token)
        found = await self._store.get_refresh_token(token_hash)
        if found is None:
            raise _invalid_refresh()
        await enforce(self._limiter, f"auth:refresh:device:{found.device_id}",
                      self._limits.refresh_per_device, "token refreshes")
        now = self._clock()
        reused: DeviceRow | None = None
        async with self._store.transaction() as tx:
            row = await tx.get_refresh_token(token_hash)
            if row is None:  # its family was revoked meanwhile
                raise _invalid_refresh()
            device = await tx.get_device(row.device_id)
            if device is None or device.revoked:
                raise Unauthenticated("this device has been revoked", reason="DEVICE_REVOKED")
            if row.expire_time <= now:
                raise Unauthenticated("refresh token expired; log in again",
                                      reason="REFRESH_TOKEN_EXPIRED")
            if row.used_time is not None or not await tx.mark_refresh_token_used(token_hash,
                                                                                  now):
                # Someone else holds this family: revoke the whole session (committed).
                reused = await self._revoke_in(tx, device, now, "refresh_token_reused")
            else:
                await tx.delete_expired_refresh_tokens(device.id, now)
                await tx.touch_device(device.id, now)
                new_token, new_row = self._new_refresh_token(device, now)
                await tx.insert_refresh_token(new_row)
        if reused is not None:
            await self._publish_revocation(reused)
            log.warning("refresh token reuse: device revoked", user_id=reused.user_id,
                        device_id=reused.id)
            raise Unauthenticated(
                "refresh token already used; this device's session has been revoked",
                reason="REFRESH_TOKEN_REUSED")
        return self._pair(device, new_token, new_row, now)

    async def logout(self, caller: Principal) -> None:
        async with self._store.transaction() as tx:
            device = await tx.get_device(caller.device_id)
            if device is None or device.user_id != caller.user_id:
                raise NotFound("device not found", reason="DEVICE_NOT_FOUND")
            revoked = await self._revoke_in(tx, device, self._clock(), "logout")
        await self._publish_revocation(revoked)

    def jwks(self) -> list[dict[str, str]]:
        return self._issuer.jwks()

    # GetUser and LookupUser: any authenticated caller (the interceptor checked the token)
    # may read any user's public profile. A visibility rule added here must run before the
    # profile cache is asked (profiles.py), as this one does, so it holds on every call.

    async def get_user(self, caller: Principal, user_ref: str) -> auth_pb2.User:
        user_id = caller.user_id if user_ref == names.ME else user_ref
        user = await self._profiles.by_id(user_id)
        if user is None:
            raise NotFound(f"user {names.user_name(user_ref)} not found",
                           reason="USER_NOT_FOUND")
        return user

    async def lookup_user(self, username: str) -> auth_pb2.User:
        user = await self._profiles.by_username(username.lower())
        if user is None:
            raise NotFound(f"no user named {username.lower()!r}", reason="USER_NOT_FOUND")
        return user

    async def list_active_devices(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        """For the mesh (messaging's fan-out, group's member checks): the active devices of
        each existing user among `user_ids`; unknown users are absent."""
        if len(user_ids) > MAX_ACTIVE_DEVICE_USERS:
            raise InvalidArgument(f"at most {MAX_ACTIVE_DEVICE_USERS} users per call",
                                  field_violations=[("users", "too many")])
        return await self._store.active_devices(user_ids)

    # -- devices ----------------------------------------------------------------------------

    async def list_devices(self, caller: Principal, user_ref: str, page_size: int,
                           page_token: str, show_revoked: bool) -> DeviceList:
        user_id = _own_user(caller, user_ref)
        limit = paging.page_size(page_size)
        after = _decode_page_token(page_token, user_id, show_revoked) if page_token else None
        rows = await self._store.list_devices(user_id, after=after, limit=limit + 1,
                                              include_revoked=show_revoked)
        next_token = ""
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_token = _encode_page_token(user_id, show_revoked, last)
        return DeviceList(rows, next_token)

    async def update_device(self, caller: Principal, user_ref: str, device_id: str,
                            display_name: str, update_paths: Sequence[str]) -> DeviceRow:
        user_id = _own_user(caller, user_ref)
        unknown = [p for p in update_paths if p not in UPDATABLE_DEVICE_FIELDS]
        if unknown:
            raise InvalidArgument(
                f"only display_name can be updated, not {', '.join(unknown)}",
                field_violations=[("update_mask", f"{p!r} cannot be updated")
                                  for p in unknown],
                reason="FIELD_NOT_UPDATABLE")
        paths = set(update_paths) or UPDATABLE_DEVICE_FIELDS
        async with self._store.transaction() as tx:
            device = await tx.get_device(device_id)
            if device is None or device.user_id != user_id:
                raise _device_not_found(user_id, device_id)
            if "display_name" in paths and display_name != device.display_name:
                await tx.set_device_display_name(device_id, display_name)
                device = dataclasses.replace(device, display_name=display_name)
        return device

    async def revoke_device(self, caller: Principal, user_ref: str,
                            device_id: str) -> DeviceRow:
        user_id = _own_user(caller, user_ref)
        async with self._store.transaction() as tx:
            device = await tx.get_device(device_id)
            if device is None or device.user_id != user_id:
                raise _device_not_found(user_id, device_id)
            revoked = await self._revoke_in(tx, device, self._clock(), "revoked_by_user")
        await self._publish_revocation(revoked)
        return revoked

    async def restore_revocations(self) -> int:
        """Re-populate the RevocationList with devices whose access tokens may still be
        unexpired; call on start (the embedded RevocationList lives in memory)."""
        since = self._clock() - self._revocation_window()
        rows = await self._store.revoked_devices_since(since)
        for device in rows:
            await self._publish_revocation(device)
        if rows:
            log.info("revocations restored", devices=len(rows))
        return len(rows)

    # -- keys -------------------------------------------------------------------------------

    async def publish_device_keys(
        self, caller: Principal, user_ref: str, device_id: str, identity_key: bytes,
        signed_prekey: SignedPrekeyInput | None, one_time_prekeys: Sequence[OneTimePrekeyRow],
    ) -> int:
        user_id = _own_user(caller, user_ref)
        if device_id != caller.device_id:
            raise PermissionDenied("a device can only publish its own keys",
                                   reason="NOT_CALLING_DEVICE")
        if len(identity_key) != 32:
            raise InvalidArgument("identity_key must be a 32-byte Ed25519 public key",
                                  field_violations=[("identity_key", "must be 32 bytes")])
        if signed_prekey is not None:
            _verify_signed_prekey(identity_key, signed_prekey)
        dups = _duplicate_positions([k.key_id for k in one_time_prekeys])
        if dups:
            raise InvalidArgument(
                "one-time prekey ids must be unique within the request",
                field_violations=[(f"one_time_prekeys[{i}].key_id", "duplicate key id")
                                  for i in dups],
                reason="DUPLICATE_PREKEY_ID")
        now = self._clock()
        async with self._store.transaction() as tx:
            device = await tx.get_device(device_id)
            if device is None or device.user_id != user_id:
                raise _device_not_found(user_id, device_id)
            if device.revoked:
                raise FailedPrecondition("this device has been revoked",
                                         reason="DEVICE_REVOKED")
            if device.identity_key is not None and device.identity_key != identity_key:
                raise FailedPrecondition(
                    "this device already has a different identity key; a new identity "
                    "needs a new device (log in again)", reason="IDENTITY_KEY_CHANGED")
            if one_time_prekeys:
                ids = [k.key_id for k in one_time_prekeys]
                taken = await tx.one_time_prekey_ids(device_id, ids)
                if taken:
                    raise AlreadyExists(
                        f"one-time prekey ids already published: "
                        f"{', '.join(map(str, sorted(taken)))}",
                        reason="PREKEY_ID_EXISTS",
                        metadata={"key_ids": ",".join(map(str, sorted(taken)))})
            count = await tx.count_one_time_prekeys(device_id)
            cap = self._auth.max_one_time_prekeys
            if count + len(one_time_prekeys) > cap:
                raise ResourceExhausted(
                    f"a device can hold at most {cap} unclaimed one-time prekeys "
                    f"({count} held, {len(one_time_prekeys)} offered)",
                    reason="PREKEY_LIMIT", metadata={"limit": str(cap)})
            if device.identity_key is None:
                await tx.set_identity_key(device_id, identity_key)
            if signed_prekey is not None:
                await tx.set_signed_prekey(device_id, SignedPrekeyRow(
                    signed_prekey.key_id, signed_prekey.public_key, signed_prekey.signature,
                    now))
            if one_time_prekeys:
                await tx.add_one_time_prekeys(device_id, one_time_prekeys, now)
        return count + len(one_time_prekeys)

    async def claim_key_bundles(self, caller: Principal, user_ref: str,
                                device_refs: Sequence[tuple[str, str]]) -> list[KeyBundle]:
        """`device_refs` are (user_ref, device_id) pairs from `devices`; empty means all."""
        await enforce(self._limiter, f"auth:claim:user:{caller.user_id}",
                      self._limits.prekey_claims_per_user, "key bundle claims")
        user_id = caller.user_id if user_ref == names.ME else user_ref
        wanted: set[str] = set()
        bad = []
        for i, (ref, dev) in enumerate(device_refs):
            if (caller.user_id if ref == names.ME else ref) != user_id:
                bad.append((f"devices[{i}]", "must be a device of `user`"))
            wanted.add(dev)
        if bad:
            raise InvalidArgument("devices must belong to the user whose bundles are claimed",
                                  field_violations=bad)
        if await self._store.get_user(user_id) is None:
            raise NotFound(f"user {names.user_name(user_id)} not found",
                           reason="USER_NOT_FOUND")
        bundles = []
        async with self._store.transaction() as tx:
            for device in await tx.claimable_devices(user_id):
                if wanted and device.id not in wanted:
                    continue
                bundles.append(KeyBundle(device, await tx.claim_one_time_prekey(device.id)))
        return bundles

    async def prekey_status(self, caller: Principal, user_ref: str,
                            device_id: str) -> PrekeyStatus:
        user_id = _own_user(caller, user_ref)
        if device_id != caller.device_id:
            raise PermissionDenied("only the calling device's prekey status is visible",
                                   reason="NOT_CALLING_DEVICE")
        device = await self._store.get_device(device_id)
        if device is None or device.user_id != user_id:
            raise _device_not_found(user_id, device_id)
        return PrekeyStatus(await self._store.count_one_time_prekeys(device_id),
                            device.signed_prekey)

    # -- helpers ----------------------------------------------------------------------------

    def _new_refresh_token(self, device: DeviceRow, now: float) -> tuple[str, RefreshTokenRow]:
        token = new_refresh_token()
        row = RefreshTokenRow(token_hash=refresh_token_hash(token), device_id=device.id,
                              user_id=device.user_id, create_time=now,
                              expire_time=now + self._auth.refresh_ttl_s)
        return token, row

    def _pair(self, device: DeviceRow, refresh: str, refresh_row: RefreshTokenRow,
              now: float) -> TokenPair:
        access = self._issuer.access_token(device.user_id, device.id, now)
        return TokenPair(access.token, access.expire_time, refresh, refresh_row.expire_time)

    def _revocation_window(self) -> float:
        # Tokens are accepted up to LEEWAY_S past exp, so the entry must outlive that too.
        return float(self._auth.access_ttl_s + LEEWAY_S)

    async def _revoke_in(self, tx: AuthTx, device: DeviceRow, now: float,
                         reason: str) -> DeviceRow:
        if device.revoked:
            return device
        await tx.revoke_device(device.id, now, reason)
        await _add_device_event(tx, device, events_pb2.DeviceChanged.CHANGE_REVOKED, now)
        return dataclasses.replace(device, revoke_time=now, revoke_reason=reason,
                                   signed_prekey=None)

    async def _publish_revocation(self, device: DeviceRow) -> None:
        assert device.revoke_time is not None
        await self._revocations.revoke(device.id,
                                       device.revoke_time + self._revocation_window())
        await self._hint_devices_changed(device.user_id)

    async def _hint_devices_changed(self, user_id: str) -> None:
        """After the commit (the devices.changed event is already in the outbox): tell
        device-list caches now rather than when the bus delivers (runtime/hints.py)."""
        if self._pubsub is None:
            return
        try:
            await self._pubsub.publish(hints.DEVICES_CHANGED, user_id.encode())
        except Exception:  # best effort: the event still reaches every cache
            log.warning("devices-changed hint not published", user_id=user_id)


# -- rules that need no state ----------------------------------------------------------------


def _own_user(caller: Principal, user_ref: str) -> str:
    if user_ref in (names.ME, caller.user_id):
        return caller.user_id
    raise PermissionDenied("you can only manage your own devices", reason="NOT_OWNER")


def _verify_signed_prekey(identity_key: bytes, spk: SignedPrekeyInput) -> None:
    """Ed25519 verification (RFC 8032) of `signature` over the 32 raw prekey bytes. XEdDSA
    signatures made with an Ed25519 identity key (python-xeddsa, as python-x3dh uses it with
    IdentityKeyFormat.ED_25519 and an identity `_encode_public_key`) verify the same way."""
    if len(spk.public_key) != 32 or len(spk.signature) != 64:
        raise InvalidArgument("signed prekey must be a 32-byte key with a 64-byte signature",
                              field_violations=[("signed_prekey", "bad key or signature size")])
    try:
        Ed25519PublicKey.from_public_bytes(identity_key).verify(spk.signature, spk.public_key)
    except (InvalidSignature, ValueError):
        raise InvalidArgument(
            "signed prekey signature does not verify with the identity key",
            field_violations=[("signed_prekey.signature",
                               "not a valid Ed25519 signature by identity_key over "
                               "signed_prekey.public_key")],
            reason="SIGNATURE_INVALID") from None


def _duplicate_positions(ids: Sequence[int]) -> list[int]:
    seen: set[int] = set()
    out = []
    for i, key_id in enumerate(ids):
        if key_id in seen:
            out.append(i)
        seen.add(key_id)
    return out


def _encode_page_token(user_id: str, show_revoked: bool, last: DeviceRow) -> str:
    return paging.encode_token({"u": user_id, "r": show_revoked, "c": last.create_time,
                                "i": last.id})


def _decode_page_token(token: str, user_id: str, show_revoked: bool) -> DevicePage:
    data = paging.decode_token(token)
    try:
        page = DevicePage(float(data["c"]), str(data["i"]))
    except (ValueError, KeyError, TypeError):
        raise paging.invalid_token() from None
    if data.get("u") != user_id or data.get("r") is not show_revoked:
        raise paging.invalid_token()
    return page


def _username_taken(handle: str) -> AlreadyExists:
    return AlreadyExists(f"username {handle!r} is already taken", reason="USERNAME_TAKEN")


def _invalid_refresh() -> Unauthenticated:
    return Unauthenticated("invalid refresh token", reason="REFRESH_TOKEN_INVALID")


def _device_not_found(user_id: str, device_id: str) -> NotFound:
    return NotFound(f"device {names.device_name(user_id, device_id)} not found",
                    reason="DEVICE_NOT_FOUND")


async def _add_device_event(tx: AuthTx, device: DeviceRow,
                            change: events_pb2.DeviceChanged.Change, now: float) -> None:
    event = envelope(
        "auth", TOPIC_DEVICES_CHANGED, device.user_id, now,
        device_changed=events_pb2.DeviceChanged(
            device=names.device_name(device.user_id, device.id),
            user=names.user_name(device.user_id), change=change, change_time=timestamp(now)))
    await tx.add_event(TOPIC_DEVICES_CHANGED, event.partition_key, event,
                       event.metadata.event_id)


def _registered_event(user: UserRow) -> events_pb2.EventEnvelope:
    return envelope(
        "auth", TOPIC_USERS_REGISTERED, user.id, user.create_time,
        user_registered=events_pb2.UserRegistered(
            user=names.user_name(user.id), username=user.username,
            display_name=user.display_name, create_time=timestamp(user.create_time)))
