--[[ Leaderboard scoring (programs/standings.py): in the programs' part of the function
library (programs/keys.py LUA_PART), after leaderboard_upgrade.lua. Counts one event (a transaction's points,
an activity's weight) on every leaderboard it belongs to, once per board even when the
event is recorded again or twice at the same time. All keys carry the program's hash tag,
so one call is atomic on a Redis Cluster too.

A board's period is two keys: a sorted set whose score is the entry's points, exactly (a
double holds every integer up to 2^53 - 1, the most any total may hold), and whose member
is "<tie-break, 7 digits>:<member>"; and a hash from member to that sorted-set member.
Equal scores sort by member, so of two equal totals the larger tie-break (the earlier
moment) ranks first in ZREVRANGE. The tie-break never shares bits with the points.

The event's marker is a hash with one field per board that has counted it (kept for a
lifetime longer than any retry of the event). The entry keeps the smaller tie-break of its
last one and this event's (the later moment), so an event that arrives late but happened
earlier does not move the entry ahead. A negative event for a member not on the board
adds nothing; a total never goes below 0 nor past the most points one entry may hold.

rw_board_score: an event recorded on its own (standings.record_points, record_activity).
KEYS[1]                  the event's marker
KEYS[3i - 1], KEYS[3i], KEYS[3i + 1]
                         board i's sorted set and member index for the period holding the event,
                         and its sorted set in the old encoding (upgraded first, if any:
                         leaderboard_upgrade.lua)
ARGV[1]                  the marker's lifetime in seconds
ARGV[2]                  the most points one entry may hold (2^53 - 1)
ARGV[3 + 4(i - 1)] .. ARGV[6 + 4(i - 1)], for board i:
             board id (the marker's field), member (participant or team id),
             points to add (negative lowers the entry, never below 0),
             tie-break of the event (2^21 - 1 - ticks since the period began: larger is earlier)
Answers, per board, the member's points after the event, or -1 if the board had counted it,
as decimal strings.

BOARDS.grant(section, points): a grant counting itself in its own call (apply_grant,
wallet/functions.lua: rw_grant, rw_grant_batch, rw_award_batch), a spin's points prize
(rw_spin, games/spins.lua), or a returned sale taking back what its award counted (negative
points; rw_reverse, wallet/pending.lua), after it applied: the trailing keys and arguments, read from
section.keys[section.k] and section.argv[section.a] on (section.n boards):
  KEYS: the marker (rw:{p:P}:lbm:tx:<the grant's transaction>), then per board its sorted
        set, member index and old-encoding sorted set (as above)
  ARGV: the marker's lifetime, then per board: board id, member, tie-break
Every board adds the points the grant moved (after a cap trimmed them). ]]

-- entries: {key, index, old, board, member, delta, tie} each.
local function count_event(marker, ttl, most, entries)
  local out = {}
  for i, e in ipairs(entries) do
    local key, index, member, delta, tie = e[1], e[2], e[5], e[6], e[7]
    upgrade(e[3], key, index)
    if redis.call("HSETNX", marker, e[4], "1") == 0 then
      out[i] = "-1"
    else
      local old = redis.call("HGET", index, member)
      local points = 0
      if old then
        local previous = tonumber(string.sub(old, 1, 7))
        if previous < tie then tie = previous end
        points = tonumber(redis.call("ZSCORE", key, old) or "0")
      elseif delta <= 0 then
        delta = 0
      end
      if old or delta > 0 then
        -- Both terms are exact and rounding is monotonic: a sum past `most` compares past it.
        points = points + delta
        if points < 0 then points = 0 end
        if points > most then points = most end
        local new = string.format("%07d", tie) .. ":" .. member
        if old and old ~= new then redis.call("ZREM", key, old) end
        redis.call("ZADD", key, string.format("%d", points), new)
        redis.call("HSET", index, member, new)
      end
      out[i] = string.format("%d", points)
    end
  end
  redis.call("EXPIRE", marker, ttl)
  return out
end

BOARDS.grant = function(section, points)
  local keys, argv, k, a = section.keys, section.argv, section.k, section.a
  local entries = {}
  for i = 1, section.n do
    local ki, ai = k + 3 * (i - 1), a + 3 * (i - 1)
    entries[i] = {keys[ki + 1], keys[ki + 2], keys[ki + 3], argv[ai + 1], argv[ai + 2], points,
      tonumber(argv[ai + 3])}
  end
  count_event(keys[k], tonumber(argv[a]), MAX_BALANCE, entries)
end

redis.register_function("rw_board_score", function(keys, argv)
  local entries = {}
  for i = 1, (#keys - 1) / 3 do
    local at = 3 + 4 * (i - 1)
    entries[i] = {keys[3 * i - 1], keys[3 * i], keys[3 * i + 1], argv[at], argv[at + 1], tonumber(argv[at + 2]),
      tonumber(argv[at + 3])}
  end
  return count_event(keys[1], tonumber(argv[1]), tonumber(argv[2]), entries)
end)
