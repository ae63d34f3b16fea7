"""Pairwise sessions: X3DH to agree on a secret, then the Double Ratchet, both from the
maintained libraries (`x3dh`, `doubleratchet` with its recommended primitives: X25519
ratchet, HKDF root chain, HMAC message chains, AES-256-CBC + HMAC-SHA-256 AEAD).

What is ours is only the glue and the wire format of an envelope's ciphertext:

    RATCHET  = 0x01 | ratchet_pub(32) | prev_chain_len(u32) | index(u32) | aead_ciphertext
    PREKEY   = 0x01 | identity_key(32) | ephemeral_key(32) | signed_prekey(32)
                    | has_one_time(1) [| one_time_prekey(32)] | <RATCHET without its 0x01>

Binding. The X3DH associated data is IK_initiator || IK_responder || appendix, where the
appendix names both devices (so a session is bound to the two device names the server
routes by), and every message's associated data also carries the conversation and message id
(so the server cannot replay a ciphertext under another id or into another conversation).

As Signal does, an initiator keeps sending PREKEY envelopes (same X3DH header) until it has
received a message in the session: then messages delivered out of order, or the first one
lost, still open a session. A responder recognises a repeated header by its ephemeral key.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

import doubleratchet
import x3dh
from doubleratchet.recommended import (
    HashFunction,
    aead_aes_hmac,
    diffie_hellman_ratchet_curve25519,
    kdf_hkdf,
    kdf_separate_hmacs,
)

from clients.sdk.crypto.keys import DeviceKeys, PeerBundle
from clients.sdk.errors import DuplicateMessage, SessionBroken

WIRE_VERSION = 1
# Out-of-order tolerance: message keys kept for skipped messages, and the most a single
# message may skip ahead (the library refuses to derive more, against denial of service).
MAX_SKIPPED_KEYS = 1000
DOS_THRESHOLD = 500
MESSAGE_CHAIN_CONSTANT = b"\x01\x02"
APPENDIX_LABEL = b"zynk-session-v1"
_U32 = struct.Struct(">I")
_HDR = struct.Struct(">32sII")


class _RootKDF(kdf_hkdf.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"zynk-dr-root-v1"


class _MessageKDF(kdf_separate_hmacs.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256


class _AEAD(aead_aes_hmac.AEAD):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"zynk-dr-message-v1"


class _DoubleRatchet(doubleratchet.DoubleRatchet):
    @staticmethod
    def _build_associated_data(associated_data: bytes, header: doubleratchet.Header) -> bytes:
        return (_U32.pack(len(associated_data)) + associated_data
                + _HDR.pack(header.ratchet_pub, header.previous_sending_chain_length,
                            header.sending_chain_length))


_DR_ARGS = (diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet, _RootKDF, _MessageKDF,
            MESSAGE_CHAIN_CONSTANT, DOS_THRESHOLD, MAX_SKIPPED_KEYS, _AEAD)


def lp(*parts: bytes) -> bytes:
    """Length-prefixed concatenation: an unambiguous encoding of several byte strings."""
    return b"".join(_U32.pack(len(p)) + p for p in parts)


def session_appendix(initiator_device: str, responder_device: str) -> bytes:
    return lp(APPENDIX_LABEL, initiator_device.encode(), responder_device.encode())


# -- wire format -----------------------------------------------------------------------------


def _encode_ratchet(msg: doubleratchet.EncryptedMessage) -> bytes:
    h = msg.header
    return _HDR.pack(h.ratchet_pub, h.previous_sending_chain_length,
                     h.sending_chain_length) + msg.ciphertext


def _decode_ratchet(data: bytes) -> doubleratchet.EncryptedMessage:
    if len(data) <= _HDR.size:
        raise SessionBroken("malformed message: too short")
    pub, prev, index = _HDR.unpack_from(data)
    return doubleratchet.EncryptedMessage(doubleratchet.Header(pub, prev, index),
                                          data[_HDR.size:])


def _encode_prekey_header(h: x3dh.Header) -> bytes:
    opk = b"\x01" + h.pre_key if h.pre_key is not None else b"\x00"
    return h.identity_key + h.ephemeral_key + h.signed_pre_key + opk


def decode_prekey(data: bytes) -> tuple[x3dh.Header, doubleratchet.EncryptedMessage]:
    if len(data) < 1 + 97 or data[0] != WIRE_VERSION:
        raise SessionBroken("malformed prekey message")
    ik, ek, spk = data[1:33], data[33:65], data[65:97]
    flag = data[97]
    pos = 98
    opk = None
    if flag == 1:
        opk = data[pos:pos + 32]
        if len(opk) != 32:
            raise SessionBroken("malformed prekey message")
        pos += 32
    elif flag != 0:
        raise SessionBroken("malformed prekey message")
    return x3dh.Header(ik, ek, spk, opk), _decode_ratchet(data[pos:])


def decode_ratchet(data: bytes) -> doubleratchet.EncryptedMessage:
    if not data or data[0] != WIRE_VERSION:
        raise SessionBroken("malformed message: unknown format version")
    return _decode_ratchet(data[1:])


# -- the session -----------------------------------------------------------------------------


@dataclasses.dataclass
class Session:
    peer_device: str
    peer_identity: bytes
    ratchet: _DoubleRatchet
    associated_data: bytes
    # Initiator: the X3DH header to repeat until the peer answers. Responder: None.
    pending_header: x3dh.Header | None
    # Responder: the initiator's ephemeral key, to recognise repeated PREKEY envelopes.
    initial_ephemeral: bytes | None

    async def encrypt(self, plaintext: bytes, context: bytes) -> tuple[bool, bytes]:
        """-> (is_prekey, ciphertext)."""
        msg = await self.ratchet.encrypt_message(plaintext, self.associated_data + context)
        body = _encode_ratchet(msg)
        if self.pending_header is not None:
            return True, bytes([WIRE_VERSION]) + _encode_prekey_header(self.pending_header) + body
        return False, bytes([WIRE_VERSION]) + body

    async def decrypt(self, msg: doubleratchet.EncryptedMessage, context: bytes) -> bytes:
        try:
            plaintext = await self.ratchet.decrypt_message(msg, self.associated_data + context)
        except doubleratchet.DuplicateMessageException as e:
            raise DuplicateMessage("this message was already decrypted") from e
        except (doubleratchet.AuthenticationFailedException,
                doubleratchet.DecryptionFailedException, doubleratchet.DoSProtectionException,
                ValueError) as e:
            raise SessionBroken(f"cannot decrypt a message from {self.peer_device}") from e
        # The peer has the session now: no need to repeat the X3DH header.
        self.pending_header = None
        return plaintext

    def to_json(self) -> dict[str, Any]:
        h = self.pending_header
        return {
            "peer_device": self.peer_device, "peer_identity": self.peer_identity.hex(),
            "ratchet": self.ratchet.json, "ad": self.associated_data.hex(),
            "pending": None if h is None else _encode_prekey_header(h).hex(),
            "initial_ephemeral": None if self.initial_ephemeral is None
            else self.initial_ephemeral.hex(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Session:
        pending = None
        if d["pending"] is not None:
            raw = bytes.fromhex(d["pending"])
            pending = x3dh.Header(raw[:32], raw[32:64], raw[64:96],
                                  raw[97:129] if raw[96] == 1 else None)
        return cls(d["peer_device"], bytes.fromhex(d["peer_identity"]),
                   _DoubleRatchet.from_json(d["ratchet"], *_DR_ARGS),
                   bytes.fromhex(d["ad"]), pending,
                   None if d["initial_ephemeral"] is None
                   else bytes.fromhex(d["initial_ephemeral"]))


async def initiate(keys: DeviceKeys, own_device: str, bundle: PeerBundle, plaintext: bytes,
                   context: bytes) -> tuple[Session, bytes]:
    """Start a session from a claimed bundle; returns it and the first (PREKEY) ciphertext."""
    secret, ad, header = await keys.initiate(bundle, session_appendix(own_device, bundle.device))
    ratchet, msg = await _DoubleRatchet.encrypt_initial_message(
        *_DR_ARGS, secret, bundle.signed_prekey.public_key, plaintext, ad + context)
    session = Session(bundle.device, bundle.identity_key, ratchet, ad, header, None)
    return session, (bytes([WIRE_VERSION]) + _encode_prekey_header(header)
                     + _encode_ratchet(msg))


async def respond(keys: DeviceKeys, own_device: str, sender_device: str,
                  header: x3dh.Header, msg: doubleratchet.EncryptedMessage,
                  context: bytes) -> tuple[Session, bytes]:
    """Open the session a PREKEY envelope starts. Consumes the one-time prekey only when the
    message authenticates."""
    secret, ad, spk = await keys.accept(header, session_appendix(sender_device, own_device),
                                        sender_device)
    try:
        ratchet, plaintext = await _DoubleRatchet.decrypt_initial_message(
            *_DR_ARGS, secret, spk.priv, msg, ad + context)
    except (doubleratchet.AuthenticationFailedException,
            doubleratchet.DecryptionFailedException, doubleratchet.DoSProtectionException,
            ValueError) as e:
        raise SessionBroken(f"cannot open the session {sender_device} started") from e
    keys.consume_prekey(header)
    return Session(sender_device, header.identity_key, ratchet, ad, None,
                   header.ephemeral_key), plaintext
