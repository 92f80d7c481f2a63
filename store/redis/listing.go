package redis

import (
	"context"
	"encoding/base64"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acmebridge/acmebridge/store"
)

// The admin listings. Each kind has a sorted set (listKey) of its record
// IDs scored by the store-wide sequence (keyOrderSeq) taken when the record
// was created, written by the script that creates the record. Unrevoked
// certificates are members of the expiry index (keyCertExpiry), a sorted
// set whose scores are all 0, ordered by member: the certificate's expiry
// key (expiryKey: 24 hex digits whose byte order is time order, exact to
// the nanosecond for every time.Time), ":", its ID; so certificates that
// expire at one instant (X.509 times have whole seconds) list by ID, and a
// page ends at a member, not a score shared with others.
//
// List's cursor is the sequence of the last record of the page, base 36, as
// ListOrders'; ListExpiring's is the last member of the page, base64url.

// maxPage bounds the limit a listing is asked for, so that limit+1 and the
// Lua arithmetic on it stay exact; a larger limit gives pages of maxPage.
const maxPage = 1 << 30

// listKinds maps each kind List accepts to the key kind of its records.
var listKinds = map[store.Kind]string{
	store.KindAccount:     kindAccount,
	store.KindOrder:       kindOrder,
	store.KindCertificate: kindCert,
	store.KindEABKey:      kindEAB,
	store.KindApproval:    kindApproval,
}

// listKey is the name of the listing of a kind.
func (s *Store) listKey(kind store.Kind) string {
	return s.key(kindList, string(kind))
}

// listScript returns up to want (ID, sequence) pairs of a listing after a
// sequence (before it, newest first, when ARGV[4] is "1"), skipping and
// dropping entries whose record is gone (an order that expired).
//
// KEYS: listing. ARGV: the bound ("-inf", or "+inf" newest first, or "("
// sequence), want, the record key's name up to the ID, "1" for newest
// first.
var listScript = newLossyScript("list", `
local want = tonumber(ARGV[2])
local min = ARGV[1]
local rev = ARGV[4] == '1'
local out = {}
while #out < 2 * want do
  local batch
  if rev then
    batch = redis.call('ZREVRANGEBYSCORE', KEYS[1], min, '-inf', 'WITHSCORES', 'LIMIT', 0, want)
  else
    batch = redis.call('ZRANGEBYSCORE', KEYS[1], min, '+inf', 'WITHSCORES', 'LIMIT', 0, want)
  end
  for i = 1, #batch, 2 do
    if redis.call('EXISTS', ARGV[3] .. batch[i]) == 1 then
      out[#out + 1] = batch[i]
      out[#out + 1] = batch[i + 1]
      if #out >= 2 * want then break end
    else
      redis.call('ZREM', KEYS[1], batch[i])
    end
    min = '(' .. batch[i + 1]
  end
  if #batch < 2 * want then break end
end
return out
`)

// listBySeq reads a page of the listing at key, whose members are IDs of
// records of kind scored by sequence, in one script. The cursor is "" or
// the base-36 sequence of the last record of the previous page; a malformed
// one gives an error matching ErrNotFound.
func (s *Store) listBySeq(ctx context.Context, op, key, kind, cursor string, limit int, newest bool) (store.Page, error) {
	if limit < 1 {
		return store.Page{}, errorf("%s: limit %d is not positive", op, limit)
	}
	limit = min(limit, maxPage)
	lowest, rev := "-inf", "0"
	if newest {
		lowest, rev = "+inf", "1"
	}
	if cursor != "" {
		seq, err := strconv.ParseUint(cursor, 36, 64)
		if err != nil {
			return store.Page{}, fmt.Errorf("store/redis: %s: malformed cursor %q: %w", op, cursor, store.ErrNotFound)
		}
		lowest = "(" + strconv.FormatUint(seq, 10)
	}
	v, err := s.run(ctx, listScript, []string{key}, lowest, limit+1, s.key(kind, ""), rev)
	if err != nil {
		return store.Page{}, err
	}
	vals, _ := v.([]any)
	var page store.Page
	for i := 0; i+1 < len(vals) && len(page.IDs) < limit; i += 2 {
		page.IDs = append(page.IDs, str(vals[i]))
	}
	if len(vals)/2 > limit {
		seq, err := strconv.ParseFloat(str(vals[2*limit-1]), 64)
		if err != nil {
			return store.Page{}, errorf("%s: malformed sequence %q", op, vals[2*limit-1])
		}
		page.Next = strconv.FormatUint(uint64(seq), 36)
	}
	return page, nil
}

// List lists the IDs of every record of kind, oldest first (in the order
// they were created), at most limit (which must be positive) per page, in
// one script. The cursor is "" for the first page and Page.Next for the
// following ones. Orders that have expired are left out (and their entries
// dropped). An unknown kind or a malformed cursor gives an error matching
// ErrNotFound.
func (s *Store) List(ctx context.Context, kind store.Kind, cursor string, limit int) (store.Page, error) {
	recordKind, ok := listKinds[kind]
	if !ok {
		return store.Page{}, fmt.Errorf("store/redis: list: unknown kind %q: %w", kind, store.ErrNotFound)
	}
	return s.listBySeq(ctx, "list "+string(kind), s.listKey(kind), recordKind, cursor, limit, false)
}

// ListNewest is List newest first (one script, ZREVRANGEBYSCORE); its
// cursor is the sequence of the last record of the previous page, as
// List's.
func (s *Store) ListNewest(ctx context.Context, kind store.Kind, cursor string, limit int) (store.Page, error) {
	recordKind, ok := listKinds[kind]
	if !ok {
		return store.Page{}, fmt.Errorf("store/redis: list newest: unknown kind %q: %w", kind, store.ErrNotFound)
	}
	return s.listBySeq(ctx, "list newest "+string(kind), s.listKey(kind), recordKind, cursor, limit, true)
}

// expiryKey encodes t as 24 hex digits whose byte order is time order: the
// Unix seconds, offset so that earlier is smaller, then the nanoseconds.
func expiryKey(t time.Time) string {
	return fmt.Sprintf("%016x%08x", uint64(t.Unix())^(1<<63), t.Nanosecond()) //nolint:gosec // G115: the sign bit flipped on purpose (see above)
}

// expiryMember is c's member in the expiry index, or "" if c is revoked
// (and has none).
func expiryMember(c *store.Certificate) string {
	if !c.RevokedAt.IsZero() {
		return ""
	}
	return expiryKey(c.NotAfter) + ":" + c.ID
}

// expiryMemberRE matches what expiryMember makes.
var expiryMemberRE = regexp.MustCompile(`(?s)^[0-9a-f]{24}:.`)

// ListExpiring lists the IDs of the certificates that are not revoked and
// whose NotAfter is before before, soonest expiry first (ties by ID), at
// most limit (which must be positive) per page: one ZRANGEBYLEX. The cursor
// is "" for the first page and Page.Next for the following ones; a
// malformed one gives an error matching ErrNotFound.
func (s *Store) ListExpiring(ctx context.Context, before time.Time, cursor string, limit int) (store.Page, error) {
	if limit < 1 {
		return store.Page{}, errorf("list expiring: limit %d is not positive", limit)
	}
	limit = min(limit, maxPage)
	lowest := "-"
	if cursor != "" {
		m, err := base64.RawURLEncoding.Strict().DecodeString(cursor)
		if err != nil || !expiryMemberRE.Match(m) {
			return store.Page{}, fmt.Errorf("store/redis: list expiring: malformed cursor %q: %w", cursor, store.ErrNotFound)
		}
		lowest = "(" + string(m)
	}
	members, err := s.c.ZRangeByLex(ctx, s.global(keyCertExpiry), &redis.ZRangeBy{
		Min: lowest, Max: "(" + expiryKey(before), Count: int64(limit) + 1,
	}).Result()
	if err != nil {
		return store.Page{}, wrap("list expiring", err)
	}
	var page store.Page
	for i, m := range members {
		if i == limit {
			page.Next = base64.RawURLEncoding.EncodeToString([]byte(members[limit-1]))
			break
		}
		if len(m) <= 25 || m[24] != ':' {
			return store.Page{}, errorf("list expiring: malformed member %q", m)
		}
		page.IDs = append(page.IDs, m[25:])
	}
	return page, nil
}
