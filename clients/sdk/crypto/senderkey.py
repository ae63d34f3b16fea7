"""Sender keys for group messages -- HAND-WRITTEN on `cryptography` primitives.

No maintained Python library implements Signal-style sender keys (python-omemo and friends
do pairwise sessions only), so this module is ours. It follows the construction of Signal's
SenderKey (libsignal `SenderKeyState`/`SenderChainKey`), with modern primitives:

* Each sending device has, per group conversation, a sender key: a random 32-byte chain key,
  a random 32-bit chain id, an iteration counter and an Ed25519 signing key pair.
* Symmetric ratchet: message_seed = HMAC-SHA256(chain_key, 0x01) and
  next_chain_key = HMAC-SHA256(chain_key, 0x02). The message seed is expanded by
  HKDF-SHA256 (info "zynk-sender-key-v1 message") into a ChaCha20-Poly1305 key and nonce
  (each key is used for exactly one message, so a derived nonce is safe).
* Every message is signed with the chain's Ed25519 key, so one member cannot forge another
  member's messages even though all members can derive the same message keys.
* Wire format: 0x01 | chain_id(u32) | iteration(u32) | aead_ciphertext | signature(64).
  The AEAD associated data and the signed bytes both include a caller-supplied context (the
  conversation, message id and sending device), binding a ciphertext to where it was sent.
* Receivers keep message keys of skipped iterations for out-of-order delivery, in a bounded
  window: a message may skip at most MAX_SKIP iterations and at most MAX_SKIPPED_KEYS keys are
  kept (oldest dropped first). State only changes after the signature and the AEAD tag verify.
* Forward secrecy within a chain: a distribution message carries the chain key at the
  *current* iteration, and used chain keys are discarded, so a new recipient cannot read
  earlier messages. Removed members lose access because the client rotates to a brand-new
  sender key (new chain id, chain key and signing key) on every membership change and sends
  it only to the remaining members over pairwise sessions.
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets
import struct
from hashlib import sha256
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from clients.sdk.errors import DuplicateMessage, SessionBroken

WIRE_VERSION = 1
MAX_SKIP = 2000
MAX_SKIPPED_KEYS = 2000
SIGNATURE_LEN = 64
_HDR = struct.Struct(">BII")
_SIGN_LABEL = b"zynk-sender-key-v1 signature"
_KDF_INFO = b"zynk-sender-key-v1 message"


def _step(chain_key: bytes) -> tuple[bytes, bytes]:
    """-> (message seed, next chain key)."""
    return (hmac.new(chain_key, b"\x01", sha256).digest(),
            hmac.new(chain_key, b"\x02", sha256).digest())


def _aead(seed: bytes) -> tuple[ChaCha20Poly1305, bytes]:
    out = HKDF(algorithm=hashes.SHA256(), length=44, salt=None, info=_KDF_INFO).derive(seed)
    return ChaCha20Poly1305(out[:32]), out[32:]


def _signed_bytes(header: bytes, ciphertext: bytes, context: bytes) -> bytes:
    return b"".join((_SIGN_LABEL, struct.pack(">I", len(context)), context, header, ciphertext))


def parse_header(data: bytes) -> tuple[int, int]:
    """-> (chain id, iteration) of a sender-key ciphertext."""
    if len(data) < _HDR.size + 16 + SIGNATURE_LEN:
        raise SessionBroken("malformed group message: too short")
    version, chain_id, iteration = _HDR.unpack_from(data)
    if version != WIRE_VERSION:
        raise SessionBroken("malformed group message: unknown format version")
    return chain_id, iteration


@dataclasses.dataclass(frozen=True, slots=True)
class Distribution:
    """What a member needs to read a sender's group messages from `iteration` on."""

    chain_id: int
    iteration: int
    chain_key: bytes
    signing_key: bytes  # Ed25519 public key


@dataclasses.dataclass
class OwnSenderKey:
    """This device's sending chain in one conversation."""

    chain_id: int
    iteration: int
    chain_key: bytes
    signing_private: bytes

    @classmethod
    def generate(cls) -> OwnSenderKey:
        priv = Ed25519PrivateKey.generate().private_bytes_raw()
        return cls(secrets.randbits(32), 0, secrets.token_bytes(32), priv)

    def distribution(self) -> Distribution:
        pub = Ed25519PrivateKey.from_private_bytes(self.signing_private).public_key()
        return Distribution(self.chain_id, self.iteration, self.chain_key,
                            pub.public_bytes(Encoding.Raw, PublicFormat.Raw))

    def encrypt(self, plaintext: bytes, context: bytes) -> bytes:
        if self.iteration >= 0xFFFFFFFF:
            raise SessionBroken("sender key exhausted; rotate it")
        seed, next_key = _step(self.chain_key)
        header = _HDR.pack(WIRE_VERSION, self.chain_id, self.iteration)
        aead, nonce = _aead(seed)
        ciphertext = aead.encrypt(nonce, plaintext, header + context)
        signature = Ed25519PrivateKey.from_private_bytes(self.signing_private).sign(
            _signed_bytes(header, ciphertext, context))
        self.chain_key, self.iteration = next_key, self.iteration + 1
        return header + ciphertext + signature

    def to_json(self) -> dict[str, Any]:
        return {"chain_id": self.chain_id, "iteration": self.iteration,
                "chain_key": self.chain_key.hex(), "signing": self.signing_private.hex()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> OwnSenderKey:
        return cls(int(d["chain_id"]), int(d["iteration"]), bytes.fromhex(d["chain_key"]),
                   bytes.fromhex(d["signing"]))


@dataclasses.dataclass
class PeerSenderKey:
    """Another device's sending chain, as this device received it."""

    chain_id: int
    iteration: int  # the next iteration the chain key derives
    chain_key: bytes
    signing_key: bytes
    skipped: dict[int, bytes] = dataclasses.field(default_factory=dict)  # iteration -> seed

    @classmethod
    def from_distribution(cls, d: Distribution) -> PeerSenderKey:
        if len(d.chain_key) != 32 or len(d.signing_key) != 32:
            raise SessionBroken("malformed sender key distribution")
        return cls(d.chain_id, d.iteration, d.chain_key, d.signing_key)

    def decrypt(self, data: bytes, context: bytes) -> bytes:
        chain_id, iteration = parse_header(data)
        if chain_id != self.chain_id:
            raise SessionBroken("group message under another sender key")
        header = data[:_HDR.size]
        ciphertext, signature = data[_HDR.size:-SIGNATURE_LEN], data[-SIGNATURE_LEN:]
        try:
            Ed25519PublicKey.from_public_bytes(self.signing_key).verify(
                signature, _signed_bytes(header, ciphertext, context))
        except InvalidSignature:
            raise SessionBroken("group message signature does not verify: it was tampered "
                                "with or forged") from None
        new_skipped: dict[int, bytes] = {}
        chain_key = self.chain_key
        if iteration < self.iteration:
            seed = self.skipped.get(iteration)
            if seed is None:
                raise DuplicateMessage("group message key already used or too old")
        else:
            if iteration - self.iteration > MAX_SKIP:
                raise SessionBroken(f"group message skips more than {MAX_SKIP} messages")
            for i in range(self.iteration, iteration):
                new_skipped[i], chain_key = _step(chain_key)
            seed, chain_key = _step(chain_key)
        aead, nonce = _aead(seed)
        try:
            plaintext = aead.decrypt(nonce, ciphertext, header + context)
        except InvalidTag:
            raise SessionBroken("group message does not authenticate") from None
        # Only now, with the message authentic, move the chain.
        if iteration < self.iteration:
            del self.skipped[iteration]
        else:
            self.skipped.update(new_skipped)
            self.chain_key, self.iteration = chain_key, iteration + 1
            while len(self.skipped) > MAX_SKIPPED_KEYS:
                del self.skipped[min(self.skipped)]
        return plaintext

    def to_json(self) -> dict[str, Any]:
        return {"chain_id": self.chain_id, "iteration": self.iteration,
                "chain_key": self.chain_key.hex(), "signing_key": self.signing_key.hex(),
                "skipped": {str(k): v.hex() for k, v in self.skipped.items()}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PeerSenderKey:
        return cls(int(d["chain_id"]), int(d["iteration"]), bytes.fromhex(d["chain_key"]),
                   bytes.fromhex(d["signing_key"]),
                   {int(k): bytes.fromhex(v) for k, v in d["skipped"].items()})
