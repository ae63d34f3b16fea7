"""The group service: groups, roles, invites and membership (the source of truth that
messaging's group conversations follow)."""
