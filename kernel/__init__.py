"""What every domain package shares: errors, ids, pages, the clock, money bounds, the typed
Redis reply, idempotency, the key tag, and the Redis function plumbing. It imports no other package of ours."""

__all__: list[str] = []
