--[[ Counts one event (a transaction's points, an activity's weight) on every leaderboard it
belongs to, once per board even when the event is recorded again or twice at the same time.
All keys carry the program's hash tag, so one call is atomic on a Redis Cluster too.

A board's period is two keys: a sorted set whose score is the entry's points, exactly (a
double holds every integer up to 2^53 - 1, the most any total may hold), and whose member
is "<tie-break, 7 digits>:<member>"; and a hash from member to that sorted-set member.
Equal scores sort by member, so of two equal totals the larger tie-break (the earlier
moment) ranks first in ZREVRANGE. The tie-break never shares bits with the points.

KEYS[1]                  the event's marker: a hash with one field per board that has counted it
KEYS[3i - 1], KEYS[3i], KEYS[3i + 1]
                         board i's sorted set and member index for the period holding the event,
                         and its sorted set in the old encoding (upgraded first, if any:
                         leaderboard_upgrade.lua, prepended to this text)
ARGV[1]                  the marker's lifetime in seconds (longer than any retry of the event)
ARGV[2]                  the most points one entry may hold (2^53 - 1)
ARGV[3 + 4(i - 1)] .. ARGV[6 + 4(i - 1)], for board i:
             board id (the marker's field), member (participant or team id),
             points to add (negative lowers the entry, never below 0),
             tie-break of the event (2^21 - 1 - ticks since the period began: larger is earlier)

The entry keeps the smaller tie-break of its last one and this event's (the later moment),
so an event that arrives late but happened earlier does not move the entry ahead. A
negative event for a member not on the board adds nothing.

Answers, per board, the member's points after the event, or -1 if the board had counted it,
as decimal strings. ]]
local ttl = tonumber(ARGV[1])
local most = tonumber(ARGV[2])
local out = {}

local function encoded(tie, member)
  return string.format("%07d", tie) .. ":" .. member
end

for i = 1, (#KEYS - 1) / 3 do
  local at = 3 + 4 * (i - 1)
  local board, member = ARGV[at], ARGV[at + 1]
  local delta, tie = tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  local key, index = KEYS[3 * i - 1], KEYS[3 * i]
  upgrade(KEYS[3 * i + 1], key, index)
  if redis.call("HSETNX", KEYS[1], board, "1") == 0 then
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
      local new = encoded(tie, member)
      if old and old ~= new then redis.call("ZREM", key, old) end
      redis.call("ZADD", key, string.format("%d", points), new)
      redis.call("HSET", index, member, new)
    end
    out[i] = string.format("%d", points)
  end
end
redis.call("EXPIRE", KEYS[1], ttl)
return out
