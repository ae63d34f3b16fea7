"""The messaging service: ciphertext routing, storage, ordered delivery, receipts, offline
queue and the inbox stream (docs/messaging.md)."""
