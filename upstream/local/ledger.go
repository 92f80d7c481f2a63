package local

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/upstream"
)

// ledgerDir is where CAs of earlier versions recorded what they issued for
// which order, under Dir: one PEM chain per order ID, written (with three
// disk syncs) before the certificate was handed out. Issue is now
// idempotent without it (see orderSerial) and writes none; an order an
// earlier version signed and that is retried after the upgrade is still
// served from its entry.
const ledgerDir = "issued"

// validOrderID accepts the IDs acmebridge makes (base64url), so an ID can
// never name a path outside the ledger.
func validOrderID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// issued returns the chain issued before for orderID, or nil.
func (ca *CA) issued(orderID string) (*upstream.Result, error) {
	if !validOrderID(orderID) {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(ca.dir, ledgerDir, orderID+".pem"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: reading the issuance ledger")
	}
	res := &upstream.Result{ChainPEM: b}
	for rest := b; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: ledger entry for order %s is corrupt", orderID)
		}
		if res.Leaf == nil {
			res.Leaf = c
		} else {
			res.Chain = append(res.Chain, c)
		}
	}
	if res.Leaf == nil {
		return nil, acmeerr.New(acmeerr.Internal, "local: ledger entry for order %s is empty", orderID)
	}
	ca.log.Info("local certificate served again from the ledger", "order", orderID, "serial", serialKey(res.Leaf.SerialNumber))
	return res, nil
}
