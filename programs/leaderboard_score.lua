--[[ Adds to one entry of a leaderboard, once per event.
KEYS[1]  the leaderboard period's sorted set
KEYS[2]  the event's marker (same hash tag): set once, so a retried event counts once
ARGV[1]  member (participant or team id)
ARGV[2]  points to add (may be negative; the score never goes below zero)
ARGV[3]  tie-break: larger for earlier moments (2^21 - 1 - minutes since the period began)
ARGV[4]  marker lifetime in seconds
Score = points * 2^21 + tie-break, exact in a double while points < 2^32: equal points rank
by who reached them first. Answers the entry's new points, or -1 if the event was counted. ]]
if redis.call("SET", KEYS[2], "1", "NX", "EX", tonumber(ARGV[4])) == false then
  return -1
end
local unit = 2097152
local current = tonumber(redis.call("ZSCORE", KEYS[1], ARGV[1]) or "0")
local points = math.floor(current / unit) + tonumber(ARGV[2])
if points < 0 then points = 0 end
redis.call("ZADD", KEYS[1], points * unit + tonumber(ARGV[3]), ARGV[1])
return points
