--[[ Spins: in the games' part of the one function library (games/keys.py LUA_PART), after
games/spin_choice.lua (rw_choose) and games/sweepstakes.lua (sw_refusal); the idempotency
records, the journal and the replies are the kernel prelude's (kernel/prelude.lua).

rw_spin: one spin of a spin-to-win campaign, in one atomic step: the campaign is active and
within its dates, the participant is under the daily cap, the seed pair and nonce are the
ones the caller computed words for, the cost is payable (a free-spin token first, else
points); then the effective weights (a segment whose item is out of stock, or whose prize
the prize pool or budget can no longer pay, weighs 0), the choice, the stock, the prize,
the nonce, the day's count and the journal entry.

KEYS: idem, journal, acct, cfg, wallet, campaign (rw:{p:P}:camp:<id>), seed pair
      (rw:{p:P}:seed:<participant>), the participant's spin count for the day, then for
      each segment whose prize is sweepstakes entries (numbered k = 1, 2, ... in the
      campaign's segments JSON): that sweepstakes' config, tickets and owners keys,
      then optionally the leaderboards' section a points prize moves (programs/standings.py
      prize_scoring: the boards that count prizes): the marker (rw:{p:P}:lbm:tx:<spin id>)
      and three keys per board
ARGV: fp, ttl, tx, participant, campaign id, pair id, first nonce f, now_ms, word count n,
      nonce count m, then n words of the pair's stream (decimal) for each nonce f .. f+m-1
      in turn (concurrent spins of one participant each cover the nonces the others may
      take first), then per entries segment k the participant's public id in that
      sweepstakes, then, with the leaderboards' section, the marker's lifetime and three arguments per
      board (programs/leaderboard_score.lua, BOARDS.grant): counted with the prize's points
      only when the spin applied and won points, never its cost, never on a replay

Campaign hash: status, starts_ms, ends_ms ("" = open-ended), cost, cap ("" = none),
  pool ("1": prizes are paid from the account pool:<id>, else from the budget),
  segments (JSON: [{w, type, points?, value?, spins?, n?, sw?, k?}], value = an item
  prize's points price; n entries in sweepstakes sw), stock:<i> for item prizes.

Answers {"ok": true, tx, participant, points (net change of available), available, held,
  segment_index, weights, nonce, server_seed_hash, client_seed, pair, paid_with,
  prize_value, free_spins, at (now_ms), owed_paid (when a points prize first paid what a returned
  sale left owing)}, or a refusal. Two refusals are not recorded, so the caller retries with
  the same Idempotency-Key: "seed_moved" (the pair changed, or the nonce is
  outside the ones the caller computed words for; it carries `seed`: {pair, sealed,
  client_seed, nonce} as they are now, "" for a field the pair lacks) and "more_words"
  (every word was rejected). ]]

-- The weight a segment may have now: 0 when its prize cannot be given. `entries(k)`
-- answers the k-th entries prize's sweepstakes keys and the participant's public id there;
-- `funds` is what the program can pay prizes from ({blocked, no_overdraft, budget, pool}:
-- the same checks as budget_refusal, on values read once for every segment).
local function effective_weight(campaign, i, seg, pooled, participant, now, entries, funds)
  local w = seg.w
  if seg.type == "item" and hget_int(campaign, "stock:" .. (i - 1)) <= 0 then return 0 end
  if seg.type == "entries" then
    local sw, tickets, owners, public_id = entries(seg.k)
    if public_id == "" or sw_refusal(sw, tickets, owners, public_id, participant, seg.n, now) then return 0 end
    return w
  end
  local value = seg.value or seg.points or 0
  if seg.type == "item" or seg.type == "points" then
    if pooled then
      if funds.pool < value then return 0 end
    elseif funds.blocked or (funds.no_overdraft and funds.budget < value) then
      return 0
    end
  end
  return w
end

-- Whole numbers as to_json writes them (int_s's digits), or nil when one is not a whole
-- number below 10^18 in size: the caller then takes to_json's way.
local function whole_digits(...)
  local out = {...}
  for i = 1, select("#", ...) do
    local n = out[i]
    if type(n) ~= "number" or n % 1 ~= 0 or n >= 1e18 or n <= -1e18 then return nil end
    out[i] = int_s(n)
  end
  return out
end

-- The spin's journal metadata and its reply as to_json writes them, by concatenation, or nil
-- (a number not whole, no weights): to_json's check and cjson's walk of these two tables were
-- about 18 of a spin's 47 us in Valkey (bench/spin_lua.py --cuts). Strings go through
-- cjson.encode, as to_json writes them (a field the seed pair lacks, false, as "false").
local function spin_texts(s)
  if #s.weights == 0 then return nil end
  local d = whole_digits(s.index, s.token_delta, s.nonce, s.value, s.owed_paid, s.net, s.available, s.held,
    s.free_spins, s.now, unpack(s.weights))
  if not d then return nil end
  local weights = "[" .. table.concat(d, ",", 11) .. "]"
  local q = cjson.encode
  local owed = ""
  if s.owed_paid > 0 then owed = ',"owed_paid":' .. d[5] end
  local shared = ',"segment_index":' .. d[1] .. ',"paid_with":' .. q(s.paid_with) .. ',"pair":' .. q(s.pair) ..
    ',"nonce":' .. d[3] .. ',"server_seed_hash":' .. q(s.seed_hash) .. ',"client_seed":' .. q(s.client_seed) ..
    ',"weights":' .. weights .. ',"prize_value":' .. d[4] .. owed
  local meta = '{"campaign":' .. q(s.cid) .. ',"tokens":' .. d[2] .. shared .. '}'
  local reply = '{"ok":true,"tx":' .. q(s.tx) .. ',"participant":' .. q(s.participant) .. ',"points":' .. d[6] ..
    ',"available":' .. d[7] .. ',"held":' .. d[8] .. shared .. ',"free_spins":' .. d[9] .. ',"at":' .. d[10] .. '}'
  return meta, reply
end

register_gateable("rw_spin", function(keys, argv)
  local idem, stream, acct, cfg, wallet, campaign, seed, day = keys[1], keys[2], keys[3], keys[4], keys[5],
    keys[6], keys[7], keys[8]
  local fp, ttl, tx, participant, cid = argv[1], tonumber(argv[2]), argv[3], argv[4], argv[5]
  local pair, first, now = argv[6], tonumber(argv[7]), tonumber(argv[8])
  local early = idem_check(idem, fp)
  if early then return early end
  -- Each hash read once, here (a spin used to make some thirty reads of a field each): the
  -- checks below keep their order, and nothing is written before the last of them.
  local w = redis.call("HMGET", wallet, "open", "free_spins", "owed", "available", "earned", "spent", "held")
  early = absent_wallet(w[1])
  if early then return early end
  local c = redis.call("HMGET", cfg, "suspended", "blocked", "overdraft")
  early = suspended_program(c[1])
  if early then return early end
  local function refuse(code, detail)
    return idem_store(idem, fp, ttl, fail(code, detail))
  end

  local camp = redis.call("HMGET", campaign, "status", "starts_ms", "ends_ms", "cap", "cost", "segments", "pool")
  local status = camp[1]
  if not status then
    return to_json(fail("not_found", "no such campaign"))
  end
  if status ~= "active" then
    return refuse("campaign_not_active", "the campaign is " .. status)
  end
  local starts, ends = camp[2], camp[3]
  if starts and starts ~= "" and now < tonumber(starts) then
    return refuse("campaign_not_active", "the campaign has not started yet")
  end
  if ends and ends ~= "" and now >= tonumber(ends) then
    return refuse("campaign_not_active", "the campaign has ended")
  end
  local cap = camp[4]
  local today = tonumber(redis.call("GET", day) or "0")
  if cap and cap ~= "" and today >= tonumber(cap) then
    return refuse("limit_reached", "you have used today's " .. cap .. " spins; come back tomorrow")
  end

  local nwords, nonces = tonumber(argv[9]), tonumber(argv[10])
  local pair_now = redis.call("HMGET", seed, "nonce", "pair", "hash", "client_seed")
  local nonce = tonumber(pair_now[1] or "-1")
  if pair_now[2] ~= pair or nonce < first or nonce >= first + nonces then
    -- The pair as it is now, so the caller's cache (games/seed_cache.py) catches up and
    -- retries without reading it: only the sealed seed leaves, as Redis holds it.
    local moved = fail("seed_moved", "the seed pair moved; retry")
    local now_pair = redis.call("HMGET", seed, "pair", "sealed", "client_seed", "nonce")
    moved.seed = {pair = now_pair[1] or "", sealed = now_pair[2] or "", client_seed = now_pair[3] or "",
      nonce = tonumber(now_pair[4] or "0")}
    return to_json(moved)
  end

  local cost = tonumber(camp[5] or "0")
  -- The tokens, and what a returned sale left owing (a points prize pays it first, as every
  -- earning does: owed_credit).
  local tokens, owed = tonumber(w[2] or "0"), tonumber(w[3] or "0")
  local available, earned_before, spent_before = tonumber(w[4] or "0"), tonumber(w[5] or "0"), tonumber(w[6] or "0")
  local paid_with = "points"
  if cost > 0 and tokens > 0 then  -- a free wheel keeps the tokens for one that costs
    paid_with = "free_spin"
  elseif cost > 0 and available < cost then
    return refuse("insufficient_points",
      "available balance is " .. int_s(available) .. ", a spin costs " .. int_s(cost))
  end

  local segments = cjson.decode(camp[6])
  local pooled = camp[7] == "1"
  local a = redis.call("HMGET", acct, "budget", "prizes", "pool:" .. cid)
  local funds = {blocked = c[2] == "1", no_overdraft = c[3] == "0", budget = tonumber(a[1] or "0"),
    prizes = tonumber(a[2] or "0"), pool = tonumber(a[3] or "0")}
  local weights = {}
  local function entries(k)
    local base = 8 + (k - 1) * 3
    return keys[base + 1], keys[base + 2], keys[base + 3], argv[10 + nwords * nonces + k]
  end
  for i, seg in ipairs(segments) do
    weights[i] = effective_weight(campaign, i, seg, pooled, participant, now, entries, funds)
  end
  local words = {}
  local at = 10 + (nonce - first) * nwords  -- the words for the nonce met here
  for i = 1, nwords do words[i] = tonumber(argv[at + i]) end
  local index, problem = rw_choose(words, weights)
  if index == nil then return redis.error_reply(problem) end
  if index == -2 then
    return refuse("out_of_stock", "no prize on this wheel can be given any more")
  end
  if index == -1 then
    return to_json(fail("more_words", "every word was rejected; retry with more"))
  end

  -- Every balance the spin moves stays within bounds (checked before anything is written).
  local seg = segments[index + 1]
  local source = "budget"
  if pooled then source = "pool:" .. cid end
  local paid = 0
  if paid_with ~= "free_spin" then paid = cost end
  local prize = 0
  if seg.type == "points" then prize = seg.points elseif seg.type == "item" then prize = seg.value or 0 end
  local size = move_refusal(paid) or move_refusal(prize)
  if size then return refuse(size.code, size.detail) end
  local account_after = funds.budget - prize
  if pooled then account_after = funds.pool - prize end
  if source == "budget" then account_after = account_after + paid end
  if too_large(account_after, 0) or too_large(funds.budget, paid)
      or (seg.type == "item" and too_large(funds.prizes, prize)) then
    local bounds = balance_refusal("a program account")
    return refuse(bounds.code, bounds.detail)
  end
  if seg.type == "points" and (too_large(available - paid, prize)
      or too_large(earned_before, prize)) or too_large(spent_before, paid) then
    local bounds = balance_refusal("the participant's balance")
    return refuse(bounds.code, bounds.detail)
  end

  -- Pay: the cost first, then the prize. The wallet's fields move in one write at the end,
  -- from the values read above (`changed`: field -> its new value).
  local legs = {}
  local net, earned, spent = 0, 0, 0
  local token_delta = 0  -- free-spin tokens the spin moved (used one, won some)
  local mine = wallet_account(wallet, "available")
  if paid_with == "free_spin" then
    token_delta = -1
  elseif cost > 0 then
    hincrby(acct, "budget", cost)
    legs[#legs + 1] = {mine, "budget", cost}
    net, spent = -cost, cost
  end
  local value, owed_paid = 0, 0
  if seg.type == "points" then
    value = seg.points
    hincrby(acct, source, -value)
    local credit
    owed_paid, credit = owed_credit(acct, wallet, owed, value, source)
    for _, leg in ipairs(credit) do legs[#legs + 1] = leg end
    net, earned = net + value - owed_paid, value
  elseif seg.type == "item" then
    -- The item is paid for by the program: its price leaves the pool (or budget) for the
    -- prizes account, and the order the caller creates costs the participant nothing.
    value = seg.value or 0
    redis.call("HINCRBY", campaign, "stock:" .. index, -1)
    if value > 0 then
      hincrby(acct, source, -value)
      hincrby(acct, "prizes", value)
      legs[#legs + 1] = {source, "prizes", value}
    end
  elseif seg.type == "free_spin" then
    token_delta = token_delta + (seg.spins or 1)
  elseif seg.type == "entries" then
    -- Free tickets: the same weight as bought ones, within the same maximum (checked above).
    local sw, tickets, owners, public_id = entries(seg.k)
    sw_add_tickets(sw, tickets, owners, public_id, participant, seg.n, "free")
    redis.call("HINCRBY", sw, "won", seg.n)
  end
  local changed = {}
  if net ~= 0 then changed[#changed + 1] = "available"; changed[#changed + 1] = int_s(available + net) end
  if spent ~= 0 then changed[#changed + 1] = "spent"; changed[#changed + 1] = int_s(spent_before + spent) end
  if earned ~= 0 then changed[#changed + 1] = "earned"; changed[#changed + 1] = int_s(earned_before + earned) end
  if token_delta ~= 0 then changed[#changed + 1] = "free_spins"; changed[#changed + 1] = int_s(tokens + token_delta) end
  if #changed > 0 then redis.call("HSET", wallet, unpack(changed)) end

  redis.call("HINCRBY", seed, "nonce", 1)
  redis.call("INCR", day)
  redis.call("EXPIRE", day, 172800)
  -- Everything the spin's SQL record needs, so a spin whose request died before writing it
  -- is completed from the ledger (games/spins.py, complete_unrecorded).
  local seed_hash, client_seed = pair_now[3], pair_now[4]
  local held = tonumber(w[7] or "0")
  -- The metadata: token_delta goes in the ledger for `rebuild`; what the prize paid of the
  -- owed points, for the feed's line and reconcile. The reply: the balances after the writes
  -- above, from the ones read before them (`net` is all the spin moved of available, and it
  -- moved nothing held), and `at`, the journal entry's moment (the history row's created_at,
  -- also on a replay).
  local meta, reply = spin_texts({cid = cid, index = index, paid_with = paid_with, pair = pair,
    token_delta = token_delta, nonce = nonce, seed_hash = seed_hash, client_seed = client_seed, weights = weights,
    value = value, owed_paid = owed_paid, tx = tx, participant = participant, net = net, available = available + net,
    held = held, free_spins = tokens + token_delta, now = now})
  if not meta then
    local fields = {campaign = cid, segment_index = index, paid_with = paid_with, pair = pair, tokens = token_delta,
      nonce = nonce, server_seed_hash = seed_hash, client_seed = client_seed, weights = weights,
      prize_value = value}
    local result = {ok = true, tx = tx, participant = participant, points = net, available = available + net,
      held = held, segment_index = index, weights = weights, nonce = nonce, pair = pair,
      server_seed_hash = seed_hash, client_seed = client_seed, paid_with = paid_with, prize_value = value,
      free_spins = tokens + token_delta, at = now}
    if owed_paid > 0 then
      fields.owed_paid = owed_paid
      result.owed_paid = owed_paid
    end
    meta, reply = to_json(fields), to_json(result)
  end
  journal(stream, tx, "spin", participant, net, cid, meta, legs, argv[8], earned, spent)
  reply = idem_record(idem, fp, ttl, reply)
  -- A points prize scores the boards the caller passed (those that count prizes), after the
  -- record, as a grant does (wallet/functions.lua apply_grant); the cost never scores.
  if seg.type == "points" and value > 0 then
    local n_entries = 0
    for _, s in ipairs(segments) do
      if s.type == "entries" then n_entries = n_entries + 1 end
    end
    local k = 9 + 3 * n_entries
    local boards = board_section(keys, k, argv, 11 + nwords * nonces + n_entries, math.max(#keys - k, 0) / 3)
    if boards then BOARDS.grant(boards, value) end
  end
  return reply
end)
