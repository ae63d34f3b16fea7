"""Tripwire for the profile cache (services/auth/profiles.py): GetUser and LookupUser answer
from a cache that only a drop after each change keeps honest. Today no write changes a
user's public fields (users are only inserted; a login may re-hash the password, which the
User resource does not show). A new store write must be checked against that, and if it
changes name, username or display_name (or deletes a user), its domain method must call
`UserProfiles.drop` after the commit; then add it below."""

from __future__ import annotations

import inspect

from services.auth.store import AuthTx

# Writes that cannot change the public User resource (reviewed for the profile cache).
REVIEWED_WRITES = {
    "insert_user",  # a new user: absence is never cached
    "set_password_hash",  # not part of the User resource
    "insert_device", "set_device_display_name", "touch_device", "revoke_device",
    "insert_refresh_token", "mark_refresh_token_used", "delete_expired_refresh_tokens",
    "set_identity_key", "set_signed_prekey", "add_one_time_prekeys", "claim_one_time_prekey",
    "add_event",
}
READS = {"get_user_by_username", "get_device", "get_refresh_token", "one_time_prekey_ids",
         "count_one_time_prekeys", "claimable_devices"}


def test_every_auth_store_write_was_reviewed_for_the_profile_cache():
    methods = {n for n, _ in inspect.getmembers(AuthTx, inspect.isfunction)
               if not n.startswith("_")}
    unreviewed = methods - REVIEWED_WRITES - READS
    assert not unreviewed, (
        f"new AuthTx methods {sorted(unreviewed)}: if one changes a user's public fields, "
        "drop the profile cache after its commit (services/auth/profiles.py)")
