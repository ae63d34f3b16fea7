"""The auth service: accounts, devices, access and refresh tokens, and the public X3DH key
material of every device (identity keys, signed prekeys, one-time prekeys).

servicer.py (proto <-> domain) -> domain.py (the rules) -> store.py (the storage interface)
with sqlite.py and memory.py as its adapters; signing.py issues tokens; app.py wires it."""
