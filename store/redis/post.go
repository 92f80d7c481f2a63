package redis

import (
	"context"
	"time"

	"github.com/acmebridge/acmebridge/store"
)

// readPOSTBody is ReadPOST's script: it reads the account and, if its key
// thumbprint (field "tp") is the one given, uses the nonce with SET NX PX
// (as UseNonce), then reads the records the request names. The order's
// authorizations are found from its JSON and built from the tagged prefix
// (the same slot).
//
// KEYS: account, then [nonce], [order], [authorization], [certificate] as
// ARGV says. ARGV: key thumbprint, nonce TTL in ms, '1' with a nonce key,
// order ('0' none, '1' the order, '2' with its authorizations), '1' with an
// authorization key, '1' with a certificate key, the authorization key's
// name up to the ID. Answers {account {d, v, tp}, nonce (0 not used, 1
// first use, 2 used before), order {d, v}, {{d, v}...}, authorization
// {d, v}, certificate {d, v}}; a record not asked for is false.
const readPOSTBody = `
local i = 1
local function nextkey(flag)
  if flag == '0' then return nil end
  i = i + 1
  return KEYS[i]
end
local nkey = nextkey(ARGV[3])
local okey = nextkey(ARGV[4] == '0' and '0' or '1')
local akey = nextkey(ARGV[5])
local ckey = nextkey(ARGV[6])
local acct = redis.call('HMGET', KEYS[1], 'd', 'v', 'tp')
local used = 0
if nkey and acct[1] and ARGV[1] ~= '' and acct[3] == ARGV[1] then
  if redis.call('SET', nkey, '1', 'NX', 'PX', ARGV[2]) then used = 1 else used = 2 end
end
local order, authzs, authz, cert = false, {}, false, false
if okey then
  order = redis.call('HMGET', okey, 'd', 'v')
  if order[1] and ARGV[4] == '2' then
    local ids = cjson.decode(order[1]).authzIDs
    if type(ids) == 'table' then
      for _, id in ipairs(ids) do
        local a = redis.call('HMGET', ARGV[7] .. id, 'd', 'v')
        if a[1] then authzs[#authzs + 1] = a end
      end
    end
  end
end
if akey then authz = redis.call('HMGET', akey, 'd', 'v') end
if ckey then cert = redis.call('HMGET', ckey, 'd', 'v') end
return {acct, used, order, authzs, authz, cert}
`

// readPOSTScript uses a nonce: a write that waits for replicas when the
// store does (durability.go), as UseNonce does, so a failover cannot make
// a used nonce good again. readPOSTPeekScript, the same text, serves the
// requests that use no nonce (nothing written): it never waits.
var (
	readPOSTScript     = newScript("read post", readPOSTBody)
	readPOSTPeekScript = newLossyScript("read post", readPOSTBody)
)

// ReadPOST reads the account and the records q names and uses the nonce
// (when the account's key thumbprint is q.KeyThumbprint) in one script: one
// round trip.
func (s *Store) ReadPOST(ctx context.Context, q *store.POSTRead) (*store.POSTRecords, error) {
	flag := func(b bool) string {
		if b {
			return "1"
		}
		return "0"
	}
	keys := []string{s.key(kindAccount, q.AccountID)}
	sc := readPOSTPeekScript
	if q.Nonce != "" && q.KeyThumbprint != "" {
		keys = append(keys, s.key(kindNonce, q.Nonce))
		sc = readPOSTScript
	}
	orderMode := "0"
	if q.OrderID != "" {
		keys = append(keys, s.key(kindOrder, q.OrderID))
		orderMode = "1"
		if q.OrderAuthzs {
			orderMode = "2"
		}
	}
	if q.AuthzID != "" {
		keys = append(keys, s.key(kindAuthz, q.AuthzID))
	}
	if q.CertificateID != "" {
		keys = append(keys, s.key(kindCert, q.CertificateID))
	}
	ttl := max(time.Until(q.NonceUntil), minNonceTTL)
	v, err := s.run(ctx, sc, keys, q.KeyThumbprint, millis(ttl), flag(sc == readPOSTScript), orderMode,
		flag(q.AuthzID != ""), flag(q.CertificateID != ""), s.key(kindAuthz, ""))
	if err != nil {
		return nil, err
	}
	vals, _ := v.([]any)
	if len(vals) != 6 {
		return nil, errorf("read post: unexpected answer %v", v)
	}
	const op = "read post"
	out := &store.POSTRecords{}
	var a store.Account
	if err := decodeOptional(op, vals[0], &a); err != nil {
		return nil, err
	} else if a.ID != "" {
		out.Account = &a
	}
	switch n, _ := vals[1].(int64); n {
	case 1:
		out.NonceChecked, out.NonceFresh = true, true
	case 2:
		out.NonceChecked = true
	}
	var o store.Order
	if err := decodeOptional(op, vals[2], &o); err != nil {
		return nil, err
	} else if o.ID != "" {
		out.Order = &o
	}
	list, _ := vals[3].([]any)
	for _, rec := range list {
		var az store.Authorization
		if err := decodeOptional(op, rec, &az); err != nil {
			return nil, err
		}
		out.Authzs = append(out.Authzs, &az)
	}
	var az store.Authorization
	if err := decodeOptional(op, vals[4], &az); err != nil {
		return nil, err
	} else if az.ID != "" {
		out.Authz = &az
	}
	var c store.Certificate
	if err := decodeOptional(op, vals[5], &c); err != nil {
		return nil, err
	} else if c.ID != "" {
		out.Certificate = &c
	}
	return out, nil
}

// decodeOptional decodes a record's {d, v, ...} as a script returned it;
// nil (not asked for) and a missing record leave rec as it is.
func decodeOptional(op string, v any, rec any) error {
	vals, _ := v.([]any)
	if len(vals) < 2 || vals[0] == nil {
		return nil
	}
	_, err := decodeRecord(op, vals, rec)
	return err
}
