package redis

import (
	"context"

	"github.com/acmebridge/acmebridge/store"
)

// A certificate's hash holds, besides "d" and "v", its serial ("serial")
// and its member in the expiry index ("exp", empty while it is revoked), so
// an update can move both without decoding the JSON.

// putCertificateScript stores a new certificate, its serial index entry,
// its place last in the listing of certificates and, unless it is revoked,
// in the expiry index, the order pointing at it (compare-and-set) and
// removes the order's job.
//
// KEYS: certificate, serial index entry, order, job, job queue, expiring
// set, listing of certificates, sequence, expiry index, retire set of
// certificates (retention.go), then the authorizations to keep for good
// (only when the order is valid). ARGV: the six order arguments of
// write_order, the certificate's JSON, version, serial, ID, expiry index
// member (empty when revoked) and NotAfter in ms.
var putCertificateScript = newScript("put certificate", `
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
  return 'conflict'
end
local bad = cas(KEYS[3], ARGV[1])
if bad then return bad end
remove_job(KEYS[4], KEYS[5])
redis.call('HSET', KEYS[1], 'v', ARGV[8], 'd', ARGV[7], 'serial', ARGV[9], 'exp', ARGV[11])
redis.call('SET', KEYS[2], ARGV[10])
redis.call('ZADD', KEYS[7], redis.call('INCR', KEYS[8]), ARGV[10])
if ARGV[11] ~= '' then redis.call('ZADD', KEYS[9], 0, ARGV[11]) end
redis.call('ZADD', KEYS[10], ARGV[12], ARGV[10])
write_order(KEYS[3], KEYS[6], 1, 11)
return 'ok'
`)

// updateCertificateScript is the compare-and-set of a certificate: a
// changed serial moves the serial index entry (unless the new serial is
// taken), and the expiry index member moves, goes (revoked) or comes back.
//
// KEYS: certificate, serial index entry of the new serial, expiry index.
// ARGV: expected version, new serial, the serial key's name up to the
// serial, certificate ID, new expiry index member (empty when revoked), JSON,
// new version.
var updateCertificateScript = newScript("update certificate", `
local bad = cas(KEYS[1], ARGV[1])
if bad then return bad end
local cur = redis.call('HMGET', KEYS[1], 'serial', 'exp')
if cur[1] ~= ARGV[2] then
  if ARGV[2] == '' or redis.call('EXISTS', KEYS[2]) == 1 then return 'conflict' end
  if cur[1] then redis.call('DEL', ARGV[3] .. cur[1]) end
  redis.call('SET', KEYS[2], ARGV[4])
end
if cur[2] and cur[2] ~= '' and cur[2] ~= ARGV[5] then redis.call('ZREM', KEYS[3], cur[2]) end
if ARGV[5] ~= '' then redis.call('ZADD', KEYS[3], 0, ARGV[5]) end
redis.call('HSET', KEYS[1], 'v', ARGV[7], 'd', ARGV[6], 'serial', ARGV[2], 'exp', ARGV[5])
return 'ok'
`)

// PutCertificate stores a new certificate, indexes its serial (and, unless
// it is revoked, its expiry) and lists it, stores o (if the stored order's
// Version equals o.Version; o.Version is then incremented) and removes o's
// job, all in one script. ErrConflict if the
// certificate ID or serial is taken or the order moved; ErrNotFound if the
// order does not exist. A valid o, and its authorizations, lose their TTLs.
func (s *Store) PutCertificate(ctx context.Context, c *store.Certificate, o *store.Order) error {
	if c.ID == "" || c.Serial == "" {
		return errorf("certificate needs an ID and a serial")
	}
	d, err := encode("certificate", c)
	if err != nil {
		return err
	}
	next := *o
	next.Version++
	args, err := s.orderArgs(version(o.Version), &next)
	if err != nil {
		return err
	}
	args = append(args, d, version(c.Version), c.Serial, c.ID, expiryMember(c), msec(c.NotAfter))
	keys := []string{
		s.key(kindCert, c.ID), s.key(kindSerial, c.Serial), s.key(kindOrder, o.ID),
		s.key(kindJob, o.ID), s.global(keyJobQueue), s.global(keyExpiring),
		s.listKey(store.KindCertificate), s.global(keyOrderSeq), s.global(keyCertExpiry),
		s.global(keyRetireCerts),
	}
	keys = append(keys, s.orderPersistKeys(o)...)
	if err := s.exec(ctx, putCertificateScript, keys, args...); err != nil {
		return err
	}
	o.Version = next.Version
	return nil
}

// GetCertificate returns the certificate or ErrNotFound.
func (s *Store) GetCertificate(ctx context.Context, id string) (*store.Certificate, error) {
	var c store.Certificate
	if _, err := s.getRecord(ctx, "get certificate", s.key(kindCert, id), &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// GetCertificateBySerial returns the certificate with that lower-case hex
// serial or ErrNotFound.
func (s *Store) GetCertificateBySerial(ctx context.Context, serial string) (*store.Certificate, error) {
	var c store.Certificate
	if _, err := s.getIndexed(ctx, "get certificate by serial", s.key(kindSerial, serial), kindCert, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// UpdateCertificate stores c if the stored Version equals c.Version, then
// increments c.Version. ErrNotFound if the certificate does not exist. A
// changed serial moves the serial index (ErrConflict if the new one is
// taken); the expiry index follows NotAfter and RevokedAt (a revoked
// certificate has no entry). One script.
func (s *Store) UpdateCertificate(ctx context.Context, c *store.Certificate) error {
	next := *c
	next.Version++
	d, err := encode("certificate", &next)
	if err != nil {
		return err
	}
	err = s.exec(ctx, updateCertificateScript,
		[]string{s.key(kindCert, c.ID), s.key(kindSerial, c.Serial), s.global(keyCertExpiry)},
		version(c.Version), c.Serial, s.key(kindSerial, ""), c.ID, expiryMember(c), d, version(next.Version))
	if err != nil {
		return err
	}
	c.Version = next.Version
	return nil
}
