package redisbroker

import "github.com/redis/go-redis/v9"

// The broker's Lua scripts. Each runs atomically in Redis, so what it
// reads and writes (offsets, the stream, presence) and what it publishes
// on Pub/Sub agree: two scripts never interleave, and a script's PUBLISH
// reaches subscribers in the order the scripts ran.
//
// Times are Redis's clock (TIME), in milliseconds, so nodes whose clocks
// disagree still agree on expiries. Numbers that go into keys, IDs or
// payloads are written with %d: Lua's default formatting switches to an
// exponent past 14 digits.

// nowMS is the prologue of every script that needs the time.
const nowMS = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// publishScript appends a message.
//
// KEYS: meta, stream, channel index. ARGV: data, history size, history TTL
// (ms), idle TTL (ms, 0: none), Pub/Sub channel, epoch to start if the
// channel has none (or rolled back), channel name, then the epoch and
// offset the node saw last (see rolledBack).
//
// It returns {offset, epoch, time, rolled back from ("": no)}.
var publishScript = redis.NewScript(nowMS + `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local off = 1
local rolled = ''
if not epoch then
  epoch = ARGV[6]
  redis.call('DEL', KEYS[2])
else
  local cur = tonumber(redis.call('HGET', KEYS[1], 'offset') or '0')
  if epoch == ARGV[8] and cur < tonumber(ARGV[9]) then
    rolled = string.format('%d', cur)
    epoch = ARGV[6]
    redis.call('DEL', KEYS[2])
  else
    off = cur + 1
  end
end
local offs = string.format('%d', off)
local size = tonumber(ARGV[2])
if size > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', size, offs .. '-0', 'd', ARGV[1], 't', string.format('%d', now))
else
  redis.call('DEL', KEYS[2])
end
redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', offs, 'size', ARGV[2], 'ttl', ARGV[3])
if tonumber(ARGV[4]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  if size > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
end
redis.call('ZADD', KEYS[3], now, ARGV[7])
redis.call('PUBLISH', ARGV[5], 'm ' .. offs .. ' ' .. epoch .. ' ' .. string.format('%d', now) .. ' ' .. ARGV[1])
return {offs, epoch, string.format('%d', now), rolled}
`)

// historyScript reads a channel's position and, as asked, messages of its
// history; a channel without state gets a new epoch at offset 0.
//
// KEYS: meta, stream, channel index. ARGV: epoch to start if the channel
// has none (or rolled back), idle TTL (ms, 0: none), channel name, mode
// ("position", "latest" or "since"), limit (0: none), first offset wanted
// (since), the epoch that offset belongs to (since), then the epoch and
// offset the node saw last (see rolledBack).
//
// It returns {epoch, offset, size, ttl (ms), now, rolled back from ("":
// no), then id, time, data for each message, oldest first for "since",
// newest first for "latest"}.
var historyScript = redis.NewScript(nowMS + `
local m = redis.call('HMGET', KEYS[1], 'epoch', 'offset', 'size', 'ttl')
local rolled = ''
if not m[1] then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'offset', '0', 'size', '0', 'ttl', '0')
  if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
  redis.call('ZADD', KEYS[3], now, ARGV[3])
  m = {ARGV[1], '0', '0', '0'}
elseif m[1] == ARGV[8] and tonumber(m[2] or '0') < tonumber(ARGV[9]) then
  rolled = m[2] or '0'
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'offset', '0')
  if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
  m = {ARGV[1], '0', m[3], m[4]}
end
local out = {m[1], m[2] or '0', m[3] or '0', m[4] or '0', string.format('%d', now), rolled}
local entries = {}
local limit = tonumber(ARGV[5])
if ARGV[4] == 'latest' then
  if limit > 0 then
    entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', limit)
  else
    entries = redis.call('XREVRANGE', KEYS[2], '+', '-')
  end
elseif ARGV[4] == 'since' and ARGV[7] == m[1] then
  if limit > 0 then
    entries = redis.call('XRANGE', KEYS[2], ARGV[6] .. '-0', '+', 'COUNT', limit)
  else
    entries = redis.call('XRANGE', KEYS[2], ARGV[6] .. '-0', '+')
  end
end
for _, e in ipairs(entries) do
  local d, tm = '', '0'
  local f = e[2]
  for i = 1, #f, 2 do
    if f[i] == 'd' then d = f[i + 1] elseif f[i] == 't' then tm = f[i + 1] end
  end
  out[#out + 1] = e[1]
  out[#out + 1] = tm
  out[#out + 1] = d
end
return out
`)

// pruneScript drops a channel from the index once it has no state left
// (its keys expired, no presence).
//
// KEYS: meta, presence hash, channel index. ARGV: channel name.
var pruneScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('HLEN', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 1
end
return 0
`)

// addPresenceScript records a present client and publishes a join if it
// was not present.
//
// KEYS: presence hash, presence expiries, channel index. ARGV: client id,
// ClientInfo as JSON, presence TTL (ms), idle TTL (ms, 0: none), Pub/Sub
// channel, channel name.
var addPresenceScript = redis.NewScript(nowMS + `
local new = redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[6] .. ' ' .. ARGV[1])
if tonumber(ARGV[4]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
redis.call('ZADD', KEYS[3], now, ARGV[6])
if new == 1 then redis.call('PUBLISH', ARGV[5], 'j ' .. ARGV[2]) end
return new
`)

// refreshPresenceScript pushes back the expiry of present clients; it
// returns, for each, 1 if it was refreshed and 0 if it is not present
// anymore (removed, or expired and swept).
//
// KEYS: presence expiries. ARGV: presence TTL (ms), idle TTL (ms, 0:
// none), key prefix, then channel name and client id for each client.
var refreshPresenceScript = redis.NewScript(nowMS + `
local out = {}
for i = 4, #ARGV, 2 do
  local member = ARGV[i] .. ' ' .. ARGV[i + 1]
  local hash = ARGV[3] .. ':{' .. ARGV[i] .. '}:presence'
  if redis.call('HEXISTS', hash, ARGV[i + 1]) == 1 then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), member)
    if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', hash, ARGV[2]) end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
`)

// removePresenceScript removes a present client and publishes its leave;
// removing an absent client does nothing.
//
// KEYS: presence hash, presence expiries. ARGV: client id, Pub/Sub
// channel, channel name.
var removePresenceScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[3] .. ' ' .. ARGV[1])
if not v then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], 'l ' .. v)
return 1
`)

// sweepPresenceScript removes up to a limit of expired clients, publishing
// a leave for each: whichever node runs it first publishes it, once.
//
// KEYS: presence expiries. ARGV: key prefix, limit. It returns how many it
// removed.
var sweepPresenceScript = redis.NewScript(nowMS + `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  local sp = string.find(member, ' ', 1, true)
  if sp then
    local ch = string.sub(member, 1, sp - 1)
    local client = string.sub(member, sp + 1)
    local hash = ARGV[1] .. ':{' .. ch .. '}:presence'
    local v = redis.call('HGET', hash, client)
    if v then
      redis.call('HDEL', hash, client)
      redis.call('PUBLISH', ARGV[1] .. ':{' .. ch .. '}:events', 'l ' .. v)
    end
  end
end
return #due
`)

// presenceScript lists the present clients of a channel that have not
// expired, as their JSON.
//
// KEYS: presence hash, presence expiries. ARGV: channel name.
var presenceScript = redis.NewScript(nowMS + `
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local exp = redis.call('ZSCORE', KEYS[2], ARGV[1] .. ' ' .. all[i])
  if exp and tonumber(exp) > now then out[#out + 1] = all[i + 1] end
end
return out
`)
