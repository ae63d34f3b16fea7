"""This device's X3DH key material, kept by the maintained `x3dh` library (BaseState).

We use BaseState (manual management) rather than x3dh.State because the server, not the
library, knows how many one-time prekeys are left (GetPrekeyStatus), and because the server
names prekeys by integer ids that the library does not track. This module adds exactly that:
ids for one-time and signed prekeys, replenishment and signed-prekey rotation.

Key formats follow what the auth service verifies: the identity key is an Ed25519 public key
(IdentityKeyFormat.ED_25519) and `_encode_public_key` is the identity, so the signed-prekey
signature is an (X)EdDSA signature over exactly the 32 raw prekey bytes, which the server
checks with plain Ed25519.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import x3dh
from x3dh.signed_pre_key_pair import SignedPreKeyPair

from clients.sdk.errors import SessionBroken

X3DH_INFO = b"zynk-x3dh-v1"
HASH = x3dh.HashFunction.SHA_256
KEY_FORMAT = x3dh.IdentityKeyFormat.ED_25519
# The server refuses more than 200 one-time prekeys per publish request.
MAX_PREKEYS_PER_PUBLISH = 200


class _State(x3dh.BaseState):
    @staticmethod
    def _encode_public_key(key_format: x3dh.IdentityKeyFormat, pub: bytes) -> bytes:
        return pub


@dataclasses.dataclass(frozen=True, slots=True)
class SignedPrekey:
    key_id: int
    public_key: bytes
    signature: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class OneTimePrekey:
    key_id: int
    public_key: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class PeerBundle:
    """A claimed X3DH bundle of one peer device (from ClaimKeyBundles)."""

    device: str
    identity_key: bytes
    signed_prekey: SignedPrekey
    one_time_prekey: OneTimePrekey | None

    def to_json(self) -> dict[str, Any]:
        otpk = self.one_time_prekey
        return {"device": self.device, "identity_key": self.identity_key.hex(),
                "spk_id": self.signed_prekey.key_id,
                "spk": self.signed_prekey.public_key.hex(),
                "spk_sig": self.signed_prekey.signature.hex(),
                "opk_id": None if otpk is None else otpk.key_id,
                "opk": None if otpk is None else otpk.public_key.hex()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PeerBundle:
        otpk = None if d["opk"] is None else OneTimePrekey(int(d["opk_id"]),
                                                          bytes.fromhex(d["opk"]))
        return cls(d["device"], bytes.fromhex(d["identity_key"]),
                   SignedPrekey(int(d["spk_id"]), bytes.fromhex(d["spk"]),
                                bytes.fromhex(d["spk_sig"])), otpk)


class DeviceKeys:
    def __init__(self, state: _State, spk_id: int, spk_time: float,
                 prekey_ids: dict[int, bytes], next_prekey_id: int) -> None:
        self._state = state
        self.signed_prekey_id = spk_id
        self.signed_prekey_time = spk_time
        # id -> public key of every one-time prekey whose private half we still hold.
        self._prekey_ids = prekey_ids
        self._next_prekey_id = next_prekey_id
        # The library recomputes every public key on each `bundle` access: cache ours.
        bundle = state.bundle
        self._identity_key = bundle.identity_key
        self._spk = SignedPrekey(spk_id, bundle.signed_pre_key, bundle.signed_pre_key_sig)

    @classmethod
    def generate(cls) -> DeviceKeys:
        state = _State.create(KEY_FORMAT, HASH, X3DH_INFO)
        return cls(state, 1, time.time(), {}, 1)

    # -- public material -------------------------------------------------------------------

    @property
    def identity_key(self) -> bytes:
        return self._identity_key

    def signed_prekey(self) -> SignedPrekey:
        return self._spk

    def one_time_prekeys(self) -> list[OneTimePrekey]:
        """Every one-time prekey whose private half this device holds."""
        return [OneTimePrekey(k, v) for k, v in sorted(self._prekey_ids.items())]

    @property
    def one_time_prekey_count(self) -> int:
        return len(self._prekey_ids)

    def new_one_time_prekeys(self, count: int) -> list[OneTimePrekey]:
        """Generate `count` new one-time prekeys with fresh ids (not yet published)."""
        self._state.generate_pre_keys(count)
        fresh = sorted(set(self._state.bundle.pre_keys) - set(self._prekey_ids.values()))
        out = []
        for pub in fresh:
            key_id = self._next_prekey_id
            self._next_prekey_id += 1
            self._prekey_ids[key_id] = pub
            out.append(OneTimePrekey(key_id, pub))
        return out

    def rotate_signed_prekey(self) -> SignedPrekey:
        """A new signed prekey; the previous one stays usable for sessions already in flight
        until the next rotation (the library keeps exactly one old signed prekey)."""
        self._state.rotate_signed_pre_key()
        self.signed_prekey_id += 1
        self.signed_prekey_time = time.time()
        b = self._state.bundle
        self._spk = SignedPrekey(self.signed_prekey_id, b.signed_pre_key, b.signed_pre_key_sig)
        return self._spk

    def signed_prekey_age(self) -> float:
        return time.time() - self.signed_prekey_time

    def forget_one_time_prekey(self, pub: bytes) -> None:
        self._state.delete_pre_key(pub)
        for key_id, p in list(self._prekey_ids.items()):
            if p == pub:
                del self._prekey_ids[key_id]

    # -- key agreement ---------------------------------------------------------------------

    async def initiate(self, bundle: PeerBundle, appendix: bytes) -> tuple[bytes, bytes,
                                                                           x3dh.Header]:
        pre_keys = frozenset({bundle.one_time_prekey.public_key}
                             if bundle.one_time_prekey else ())
        try:
            return await self._state.get_shared_secret_active(
                x3dh.Bundle(identity_key=bundle.identity_key,
                            signed_pre_key=bundle.signed_prekey.public_key,
                            signed_pre_key_sig=bundle.signed_prekey.signature,
                            pre_keys=pre_keys),
                appendix, require_pre_key=False)
        except x3dh.KeyAgreementException as e:
            raise SessionBroken(
                f"cannot start a session with {bundle.device}: its signed prekey signature "
                "does not verify (the server or that device is misbehaving)") from e

    async def accept(self, header: x3dh.Header, appendix: bytes, sender: str
                     ) -> tuple[bytes, bytes, SignedPreKeyPair]:
        """The passive half. The one-time prekey is NOT deleted here: the caller deletes it
        (consume_prekey) only once the first message decrypted, so a forged header cannot
        burn our prekeys."""
        try:
            return await self._state.get_shared_secret_passive(header, appendix,
                                                               require_pre_key=False)
        except x3dh.KeyAgreementException as e:
            raise SessionBroken(
                f"cannot open the session {sender} started: the prekey it used is gone "
                "(already used, or a signed prekey rotated out twice since)") from e

    def consume_prekey(self, header: x3dh.Header) -> None:
        if header.pre_key is not None:
            self.forget_one_time_prekey(header.pre_key)

    # -- persistence -----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"x3dh": self._state.json, "spk_id": self.signed_prekey_id,
                "spk_time": self.signed_prekey_time,
                "prekey_ids": {str(k): v.hex() for k, v in self._prekey_ids.items()},
                "next_prekey_id": self._next_prekey_id}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeviceKeys:
        state, _ = _State.from_json(data["x3dh"], KEY_FORMAT, HASH, X3DH_INFO)
        ids = {int(k): bytes.fromhex(v) for k, v in data["prekey_ids"].items()}
        return cls(state, int(data["spk_id"]), float(data["spk_time"]), ids,
                   int(data["next_prekey_id"]))
