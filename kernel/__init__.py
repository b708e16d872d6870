"""What every domain package shares: errors, ids, pages, the clock, money bounds, the typed
Redis reply, idempotency, the key tag, the Redis function plumbing and the one function
library's loader with its Lua prelude. It imports no other package of ours."""

__all__: list[str] = []
