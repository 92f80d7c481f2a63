package redis

import (
	"context"
	"time"

	"github.com/acmebridge/acmebridge/store"
)

// kindRate keys hold rate-limit buckets: string: TAT (Unix µs), expiring
// when the bucket is full again.
const kindRate = "rate"

// spendRates is store.SpendAll in Lua: KEYS are the buckets, ARGV[1] now
// (µs), then five arguments per spend: key index, cost, interval (µs),
// burst offset (µs), check-only ("1"). Every spend is decided first (a key
// named twice against the time the earlier spend left); only if all are
// allowed are the new TATs written, each with PEXPIREAT at its TAT. The
// answer is one {allowed, remaining, retry µs, TAT µs} per spend. The
// arithmetic is store.GCRA's, in whole microseconds (exact in Lua's
// doubles).
var spendRates = newLossyScript("spend rates", `
local now = tonumber(ARGV[1])
local cur, out, allowed = {}, {}, true
local n = (#ARGV - 1) / 5
for i = 0, n - 1 do
  local a = 2 + i * 5
  local k = tonumber(ARGV[a])
  local cost, interval, burst = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local check = ARGV[a + 4] == '1'
  local t = cur[k]
  if t == nil then t = tonumber(redis.call('GET', KEYS[k]) or '0') end
  if t < now then t = now end
  local ok, retry = 1, 0
  local nxt = t + cost * interval
  if cost < 0 then
    if nxt < now then nxt = now end
  elseif nxt - now > burst then
    ok, retry, nxt, allowed = 0, nxt - now - burst, t, false
  elseif check then
    nxt = t
  end
  local rem = math.floor((burst - (nxt - now)) / interval)
  if rem < 0 then rem = 0 end
  cur[k] = nxt
  out[#out + 1] = {ok, rem, retry, nxt}
end
if allowed then
  local done = {}
  for i = n - 1, 0, -1 do
    local a = 2 + i * 5
    local k = tonumber(ARGV[a])
    if ARGV[a + 4] ~= '1' and not done[k] then
      done[k] = true
      local t = out[i + 1][4]
      if t <= now then
        redis.call('DEL', KEYS[k])
      else
        redis.call('SET', KEYS[k], string.format('%d', t), 'PXAT', string.format('%d', math.ceil(t / 1000)))
      end
    end
  end
end
return out
`)

// SpendRates decides a batch of rate-limit spends in one script (one round
// trip), atomic across every replica: all are recorded or none. Every key
// shares the store's hash tag, so this works on Redis Cluster too.
func (s *Store) SpendRates(ctx context.Context, spends []store.RateSpend, now time.Time) ([]store.RateDecision, error) {
	if len(spends) == 0 {
		return nil, nil
	}
	idx := map[string]int{}
	var keys []string
	args := []any{now.UnixMicro()}
	for _, sp := range spends {
		k, ok := idx[sp.Key]
		if !ok {
			keys = append(keys, s.key(kindRate, sp.Key))
			k = len(keys)
			idx[sp.Key] = k
		}
		interval, burst := sp.Limit.Params()
		check := "0"
		if sp.CheckOnly {
			check = "1"
		}
		args = append(args, k, sp.Cost, interval, burst, check)
	}
	v, err := s.run(ctx, spendRates, keys, args...)
	if err != nil {
		return nil, err
	}
	rows, ok := v.([]any)
	if !ok || len(rows) != len(spends) {
		return nil, errorf("spend rates: unexpected answer %T", v)
	}
	out := make([]store.RateDecision, len(rows))
	for i, r := range rows {
		f, ok := r.([]any)
		if !ok || len(f) != 4 {
			return nil, errorf("spend rates: unexpected row %v", r)
		}
		allowed, _ := f[0].(int64)
		rem, _ := f[1].(int64)
		retry, _ := f[2].(int64)
		tat, _ := f[3].(int64)
		out[i] = store.RateDecision{Allowed: allowed == 1, Remaining: rem,
			RetryIn: time.Duration(retry) * time.Microsecond, TAT: time.UnixMicro(tat)}
	}
	return out, nil
}
