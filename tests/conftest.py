"""Fixtures every test directory may use."""

from tests.support.postgres import postgres_url  # noqa: F401  (session: a throwaway database)
