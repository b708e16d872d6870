--[[ Counts one event (a transaction's points, an activity's weight) on every leaderboard it
belongs to, once per board even when the event is recorded again or twice at the same time.
All keys carry the program's hash tag, so one call is atomic on a Redis Cluster too.

KEYS[1]      the event's marker: a hash with one field per board that has counted it
KEYS[1 + i]  board i's sorted set for the period holding the event, i = 1..n
ARGV[1]      the marker's lifetime in seconds (longer than any retry of the event)
ARGV[2]      the most points one entry may hold (2^32 - 1, so the score stays exact)
ARGV[3 + 4(i - 1)] .. ARGV[6 + 4(i - 1)], for board i:
             board id (the marker's field), member (participant or team id),
             points to add (negative lowers the entry, never below 0),
             tie-break of the event (2^21 - 1 - ticks since the period began: larger is earlier)

Score = points * 2^21 + tie-break: equal points rank by who reached them first. The entry
keeps the smaller tie-break of its last one and this event's (the later moment), so an event
that arrives late but happened earlier does not move the entry ahead. A negative event for a
member not on the board adds nothing.

Answers, per board, the member's points after the event, or -1 if the board had counted it. ]]
local unit = 2097152
local ttl = tonumber(ARGV[1])
local most = tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS - 1 do
  local at = 3 + 4 * (i - 1)
  local board, member = ARGV[at], ARGV[at + 1]
  local delta, tie = tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  if redis.call("HSETNX", KEYS[1], board, "1") == 0 then
    out[i] = -1
  else
    local key = KEYS[1 + i]
    local score = redis.call("ZSCORE", key, member)
    if score == false or score == nil then
      if delta > 0 then
        if delta > most then delta = most end
        redis.call("ZADD", key, string.format("%.0f", delta * unit + tie), member)
        out[i] = delta
      else
        out[i] = 0
      end
    else
      score = tonumber(score)
      local points = math.floor(score / unit)
      local previous = score - points * unit
      if previous < tie then tie = previous end
      points = points + delta
      if points < 0 then points = 0 end
      if points > most then points = most end
      redis.call("ZADD", key, string.format("%.0f", points * unit + tie), member)
      out[i] = points
    end
  end
end
redis.call("EXPIRE", KEYS[1], ttl)
return out
