"""AuthService over gRPC: converts proto <-> domain calls, nothing else. The interceptor has
already authenticated the caller (per the `zynk.api.v1.access` option) and checked the
request's buf.validate rules."""

from __future__ import annotations

from services.auth import names
from services.auth.profiles import public_user
from services.auth.domain import AuthDomain, KeyBundle, SignedPrekeyInput, TokenPair
from services.auth.store import DeviceRow, OneTimePrekeyRow, SignedPrekeyRow
from services.runtime import context
from services.runtime.context import current_principal
from services.runtime.errors import InvalidArgument
from services.runtime.pbtime import timestamp
from zynk.auth.v1 import auth_pb2, auth_pb2_grpc


user_pb = public_user


def device_pb(d: DeviceRow) -> auth_pb2.Device:
    return auth_pb2.Device(name=names.device_name(d.user_id, d.id), display_name=d.display_name,
                           create_time=timestamp(d.create_time),
                           last_seen_time=timestamp(d.last_seen_time),
                           revoke_time=timestamp(d.revoke_time), has_keys=d.has_keys)


def tokens_pb(t: TokenPair) -> auth_pb2.TokenPair:
    return auth_pb2.TokenPair(access_token=t.access_token,
                              access_token_expire_time=timestamp(t.access_token_expire_time),
                              refresh_token=t.refresh_token,
                              refresh_token_expire_time=timestamp(t.refresh_token_expire_time))


def signed_prekey_pb(s: SignedPrekeyRow) -> auth_pb2.SignedPrekey:
    return auth_pb2.SignedPrekey(key_id=s.key_id, public_key=s.public_key,
                                 signature=s.signature)


def bundle_pb(b: KeyBundle) -> auth_pb2.KeyBundle:
    d = b.device
    assert d.identity_key is not None and d.signed_prekey is not None
    otpk = b.one_time_prekey
    return auth_pb2.KeyBundle(
        device=names.device_name(d.user_id, d.id), identity_key=d.identity_key,
        signed_prekey=signed_prekey_pb(d.signed_prekey),
        one_time_prekey=None if otpk is None else auth_pb2.OneTimePrekey(
            key_id=otpk.key_id, public_key=otpk.public_key))


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, domain: AuthDomain) -> None:
        self._d = domain

    async def Register(self, request, context_):
        user = await self._d.register(request.username, request.password,
                                      request.display_name, context.client_address.get())
        return auth_pb2.RegisterResponse(user=user_pb(user))

    async def Login(self, request, context_):
        r = await self._d.login(request.username, request.password,
                                request.device_display_name, context.client_address.get())
        return auth_pb2.LoginResponse(user=user_pb(r.user), device=device_pb(r.device),
                                      tokens=tokens_pb(r.tokens))

    async def RefreshToken(self, request, context_):
        return auth_pb2.RefreshTokenResponse(
            tokens=tokens_pb(await self._d.refresh(request.refresh_token)))

    async def Logout(self, request, context_):
        await self._d.logout(current_principal())
        return auth_pb2.LogoutResponse()

    async def GetJwks(self, request, context_):
        return auth_pb2.GetJwksResponse(keys=[auth_pb2.Jwk(**k) for k in self._d.jwks()])

    async def GetUser(self, request, context_):
        user = await self._d.get_user(current_principal(),
                                      names.parse_user(request.name, "name"))
        return auth_pb2.GetUserResponse(user=user)

    async def LookupUser(self, request, context_):
        return auth_pb2.LookupUserResponse(user=await self._d.lookup_user(request.username))

    async def ListDevices(self, request, context_):
        page = await self._d.list_devices(
            current_principal(), names.parse_user(request.parent, "parent"),
            request.page_size, request.page_token, request.show_revoked)
        return auth_pb2.ListDevicesResponse(devices=[device_pb(d) for d in page.devices],
                                            next_page_token=page.next_page_token)

    async def UpdateDevice(self, request, context_):
        user_ref, device_id = names.parse_device(request.device.name, "device.name")
        device = await self._d.update_device(current_principal(), user_ref, device_id,
                                             request.device.display_name,
                                             list(request.update_mask.paths))
        return auth_pb2.UpdateDeviceResponse(device=device_pb(device))

    async def RevokeDevice(self, request, context_):
        user_ref, device_id = names.parse_device(request.name, "name")
        device = await self._d.revoke_device(current_principal(), user_ref, device_id)
        return auth_pb2.RevokeDeviceResponse(device=device_pb(device))

    async def PublishDeviceKeys(self, request, context_):
        user_ref, device_id = names.parse_device(request.device, "device")
        spk = None
        if request.HasField("signed_prekey"):
            s = request.signed_prekey
            spk = SignedPrekeyInput(s.key_id, s.public_key, s.signature)
        count = await self._d.publish_device_keys(
            current_principal(), user_ref, device_id, request.identity_key, spk,
            [OneTimePrekeyRow(k.key_id, k.public_key) for k in request.one_time_prekeys])
        return auth_pb2.PublishDeviceKeysResponse(one_time_prekey_count=count)

    async def ClaimKeyBundles(self, request, context_):
        user_ref = names.parse_user(request.user, "user")
        devices = [names.parse_device(d, f"devices[{i}]")
                   for i, d in enumerate(request.devices)]
        bundles = await self._d.claim_key_bundles(current_principal(), user_ref, devices)
        return auth_pb2.ClaimKeyBundlesResponse(bundles=[bundle_pb(b) for b in bundles])

    async def ListActiveDevices(self, request, context_):
        ids = []
        for i, name in enumerate(request.users):
            user_id = names.parse_user(name, f"users[{i}]")
            if user_id == names.ME:
                raise InvalidArgument("`users/me` has no meaning inside the mesh",
                                      field_violations=[(f"users[{i}]", "name a user by id")])
            ids.append(user_id)
        found = await self._d.list_active_devices(ids)
        return auth_pb2.ListActiveDevicesResponse(users=[
            auth_pb2.UserDevices(user=names.user_name(u),
                                 devices=[names.device_name(u, d) for d in devices])
            for u, devices in found.items()])

    async def GetPrekeyStatus(self, request, context_):
        user_ref, device_id = names.parse_prekey_status(request.name, "name")
        status = await self._d.prekey_status(current_principal(), user_ref, device_id)
        spk = status.signed_prekey
        return auth_pb2.GetPrekeyStatusResponse(
            one_time_prekey_count=status.one_time_prekey_count,
            signed_prekey_id=0 if spk is None else spk.key_id,
            signed_prekey_create_time=None if spk is None else timestamp(spk.create_time))
