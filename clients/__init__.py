"""Zynk's reference end-to-end encrypted client: the Python SDK (clients.sdk) and the
`zynk` client subcommands (clients.cli)."""
