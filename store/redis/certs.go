package redis

import (
	"context"

	"github.com/acmebridge/acmebridge/store"
)

// putCertificateScript stores a new certificate and its serial index entry,
// the order pointing at it (compare-and-set) and removes the order's job.
//
// KEYS: certificate, serial index entry, order, job, job queue, expiring
// set, then the authorizations to keep for good (only when the order is
// valid). ARGV: the six order arguments of write_order, the certificate's
// JSON, version, serial and ID.
var putCertificateScript = newScript("put certificate", `
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
  return 'conflict'
end
local bad = cas(KEYS[3], ARGV[1])
if bad then return bad end
remove_job(KEYS[4], KEYS[5])
redis.call('HSET', KEYS[1], 'v', ARGV[8], 'd', ARGV[7], 'serial', ARGV[9])
redis.call('SET', KEYS[2], ARGV[10])
write_order(KEYS[3], KEYS[6], 1, 7)
return 'ok'
`)

// PutCertificate stores a new certificate, indexes its serial, stores o (if
// the stored order's Version equals o.Version; o.Version is then
// incremented) and removes o's job, all in one script. ErrConflict if the
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
	args = append(args, d, version(c.Version), c.Serial, c.ID)
	keys := []string{
		s.key(kindCert, c.ID), s.key(kindSerial, c.Serial), s.key(kindOrder, o.ID),
		s.key(kindJob, o.ID), s.global(keyJobQueue), s.global(keyExpiring),
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
// taken).
func (s *Store) UpdateCertificate(ctx context.Context, c *store.Certificate) error {
	next := *c
	next.Version++
	d, err := encode("certificate", &next)
	if err != nil {
		return err
	}
	err = s.exec(ctx, casIndexedScript,
		[]string{s.key(kindCert, c.ID), s.key(kindSerial, c.Serial)},
		version(c.Version), "serial", c.Serial, s.key(kindSerial, ""), c.ID,
		"v", version(next.Version), "d", d, "serial", c.Serial)
	if err != nil {
		return err
	}
	c.Version = next.Version
	return nil
}
