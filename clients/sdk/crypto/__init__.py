"""The client's cryptography: X3DH + Double Ratchet per device pair (the maintained `x3dh`
and `doubleratchet` libraries), hand-written sender keys for groups (senderkey.py says why),
safety numbers, and the engine that ties them to device names (engine.py)."""
