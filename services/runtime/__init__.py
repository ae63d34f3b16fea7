"""The shared service runtime: what every Zynk service uses and none copies.

server bootstrap (server.py), interceptors (interceptors.py), typed configuration
(config.py), structured logging (logging.py), errors (errors.py), the request context
(context.py), access-token verification (tokens.py, revocations.py), rate limits
(ratelimit.py), the event bus and transactional outbox (bus.py, outbox.py), SQLite storage
and migrations (sqlite.py), PostgreSQL storage, migrations and monthly partitions
(postgres.py, migrate.py, partitions.py), and channels to other services (channels.py).
"""
