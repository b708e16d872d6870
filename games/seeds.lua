--[[ Seed pairs (games/seeds.py): in the games' part of the function library
(games/keys.py LUA_PART).

The pair in use is one hash, rw:{p:P}:seed:<participant>: pair (its id), sealed (the
server seed sealed with the settings' key: Lua never needs it, FAIRNESS.md "Inside
Redis"), hash, client_seed and nonce (rw_spin advances it). A pair committed before seeds
were sealed in Redis holds `server_seed` in clear instead of `sealed` until rw_seed_seal.

rw_seed_swap: commits a new pair in place of the one in use, in one step, so concurrent
rotations and spins agree on which pair is in use: exactly one pair is active,
and the nonce the retired pair answers is final (no spin can use that pair afterwards).
The retired pair's id and final nonce are also kept in the `retired` hash until the caller
has revealed it in SQL, so a caller that dies half-way leaves that reveal to the next one.
KEYS: seed pair, retired
ARGV: expected pair id ("" when the participant has none yet; "*" for whichever pair is in
      use, so concurrent rotations each retire one pair and none has to retry), new pair id,
      sealed seed, its SHA-256 hash, client seed ("" keeps the retired pair's)
Answers {"ok": true, pair, sealed, server_seed, hash, client_seed, nonce} describing the
retired pair (pair "" if there was none; nonce as the decimal string Redis holds) and
new_client_seed, or {"ok": false, "code": "seed_moved", pair} when the pair in use is not the
expected one ("*" expects some pair).

rw_seed_seal: replaces a clear `server_seed` by its sealed form, if the pair is still the one
the caller read. KEYS: seed pair. ARGV: pair id, sealed seed. ]]

redis.register_function("rw_seed_swap", function(keys, argv)
  local seed, retired = keys[1], keys[2]
  local expected = argv[1]
  local current = redis.call("HGET", seed, "pair") or ""
  if (expected == "*" and current == "") or (expected ~= "*" and current ~= expected) then
    return cjson.encode({ok = false, code = "seed_moved", pair = current})
  end
  local old = {ok = true, pair = "", sealed = "", server_seed = "", hash = "", client_seed = "", nonce = "0"}
  if current ~= "" then
    local v = redis.call("HMGET", seed, "sealed", "server_seed", "hash", "client_seed", "nonce")
    old = {ok = true, pair = current, sealed = v[1] or "", server_seed = v[2] or "", hash = v[3] or "",
      client_seed = v[4] or "", nonce = v[5] or "0"}
    redis.call("HSET", retired, current, old.nonce)
  end
  local client_seed = argv[5]
  if client_seed == "" then
    client_seed = old.client_seed
  end
  old.new_client_seed = client_seed
  -- One replacement of every field: a spin never sees half of two pairs.
  redis.call("DEL", seed)
  redis.call("HSET", seed, "pair", argv[2], "sealed", argv[3], "hash", argv[4], "client_seed", client_seed,
    "nonce", "0")
  return cjson.encode(old)
end)

redis.register_function("rw_seed_seal", function(keys, argv)
  local seed = keys[1]
  if redis.call("HGET", seed, "pair") ~= argv[1] then
    return cjson.encode({ok = false, code = "seed_moved"})
  end
  redis.call("HSET", seed, "sealed", argv[2])
  redis.call("HDEL", seed, "server_seed")
  return cjson.encode({ok = true})
end)
