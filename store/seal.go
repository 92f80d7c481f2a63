package store

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// sealVersion marks a sealed value (the first byte); it names the scheme,
// AES-256-GCM with a random 96-bit nonce, so the scheme can change later.
const sealVersion = 1

// Sealed wraps a driver so that secrets are encrypted at rest with
// AES-256-GCM under key (32 bytes): the HMAC keys of EAB keys and the named
// secrets of PutSecret (upstream account keys). Each
// sealed value is bound to its record (the record's ID is the additional
// data), so a ciphertext cannot be moved to another record.
func Sealed(inner Store, key []byte) (Store, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("store: encryption key must be 32 bytes, not %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return &sealed{Store: inner, aead: aead}, nil
}

// ErrUnseal is returned when a secret cannot be decrypted (wrong key, or
// tampered with).
var ErrUnseal = errors.New("store: secret cannot be decrypted with the configured encryption key")

type sealed struct {
	Store
	aead cipher.AEAD
}

// Unwrap returns the driver the wrapper seals secrets for, so what only a
// driver has (the Redis driver's failover counters) can be reached.
func (s *sealed) Unwrap() Store { return s.Store }

func (s *sealed) seal(plain []byte, aad string) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	out := append([]byte{sealVersion}, nonce...)
	return s.aead.Seal(out, nonce, plain, []byte(aad))
}

func (s *sealed) open(ct []byte, aad string) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(ct) < 1+n || ct[0] != sealVersion {
		return nil, ErrUnseal
	}
	plain, err := s.aead.Open(nil, ct[1:1+n], ct[1+n:], []byte(aad))
	if err != nil {
		return nil, ErrUnseal
	}
	return plain, nil
}

func eabAAD(id string) string { return "eab:" + id }

// PutEABKey seals the HMAC key before it reaches the driver.
func (s *sealed) PutEABKey(ctx context.Context, k *EABKey) error {
	c := *k
	c.HMACKey = s.seal(k.HMACKey, eabAAD(k.ID))
	err := s.Store.PutEABKey(ctx, &c)
	k.Version = c.Version
	return err
}

// UpdateEABKey seals the HMAC key before it reaches the driver.
func (s *sealed) UpdateEABKey(ctx context.Context, k *EABKey) error {
	c := *k
	c.HMACKey = s.seal(k.HMACKey, eabAAD(k.ID))
	err := s.Store.UpdateEABKey(ctx, &c)
	k.Version = c.Version
	return err
}

// GetEABKey opens the HMAC key the driver returns.
func (s *sealed) GetEABKey(ctx context.Context, id string) (*EABKey, error) {
	k, err := s.Store.GetEABKey(ctx, id)
	if err != nil {
		return nil, err
	}
	if k.HMACKey, err = s.open(k.HMACKey, eabAAD(k.ID)); err != nil {
		return nil, fmt.Errorf("eab key %s: %w", id, err)
	}
	return k, nil
}

func secretAAD(name string) string { return "secret:" + name }

// PutSecret seals the value before it reaches the driver.
func (s *sealed) PutSecret(ctx context.Context, name string, value []byte) error {
	return s.Store.PutSecret(ctx, name, s.seal(value, secretAAD(name)))
}

// GetSecret opens the value the driver returns.
func (s *sealed) GetSecret(ctx context.Context, name string) ([]byte, error) {
	ct, err := s.Store.GetSecret(ctx, name)
	if err != nil {
		return nil, err
	}
	plain, err := s.open(ct, secretAAD(name))
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	return plain, nil
}
