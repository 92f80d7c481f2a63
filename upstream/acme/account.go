package acme

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	legoacme "github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"
	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/challenge/resolver"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/store"
)

// session is acmebridge's account at the CA, ready to use: lego's Core
// signing with the account key and account URL, and the challenge solver.
type session struct {
	core    *api.Core
	prober  *resolver.Prober
	account string
}

// accountRecord is the secret kept in the store under secretName.
type accountRecord struct {
	// Directory is the CA the key is for.
	Directory string `json:"directory"`
	// KeyPEM is the account's private key.
	KeyPEM    string    `json:"keyPEM"`
	CreatedAt time.Time `json:"createdAt"`
}

// secretName names the account key in the store: per upstream and per
// directory, so pointing an upstream at another CA (staging to
// production) makes a new account rather than reusing a key elsewhere.
func (u *Upstream) secretName() string {
	sum := sha256.Sum256([]byte(u.directory))
	return "upstream/acme/" + u.name + "/" + hex.EncodeToString(sum[:8])
}

// session returns the CA session, making it on first use: the account key
// (from the store, or made and stored once), the directory, and the
// account (registered, or found by its key). A failure is not cached.
func (u *Upstream) session(ctx context.Context) (*session, error) {
	if s := u.conn.Load(); s != nil {
		return s, nil
	}
	u.initMu.Lock()
	defer u.initMu.Unlock()
	if s := u.conn.Load(); s != nil {
		return s, nil
	}
	key, err := u.accountKey(ctx)
	if err != nil {
		return nil, err
	}
	// api.New fetches the directory (RFC 8555 §7.1.1).
	core, err := api.New(u.httpClient(), userAgent, u.directory, "", key)
	if err != nil {
		return nil, u.mapError("fetching the directory", err)
	}
	account, err := u.register(ctx, core)
	if err != nil {
		return nil, err
	}
	prober, err := u.newProber(core)
	if err != nil {
		return nil, err
	}
	s := &session{core: core, prober: prober, account: account}
	u.conn.Store(s)
	return s, nil
}

// dropSession forgets the session, so the next call registers again (the
// CA no longer knows the account, or refused it).
func (u *Upstream) dropSession() { u.conn.Store(nil) }

// accountKey returns the account key from the store, creating it first if
// there is none. Replicas racing to create it all end up with the one key
// the store kept (PutSecret is create-once).
func (u *Upstream) accountKey(ctx context.Context) (crypto.Signer, error) {
	name := u.secretName()
	b, err := u.secrets.GetSecret(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		key, kerr := certcrypto.GeneratePrivateKey(u.keyType)
		if kerr != nil {
			return nil, u.errorf(acmeerr.Internal, kerr, "generating the account key")
		}
		rec, _ := json.Marshal(accountRecord{Directory: u.directory, KeyPEM: string(certcrypto.PEMEncode(key)), CreatedAt: time.Now().UTC()})
		err = u.secrets.PutSecret(ctx, name, rec)
		switch {
		case err == nil:
			u.log.Info("acme account key created", "key_type", u.keyType, "secret", name)
			b = rec
		case errors.Is(err, store.ErrConflict):
			// Another replica stored its key first: use that one.
			b, err = u.secrets.GetSecret(ctx, name)
		}
	}
	if err != nil {
		return nil, u.unavailable(err, "the account key cannot be read from the store")
	}
	var rec accountRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, u.errorf(acmeerr.Internal, err, "the stored account key is malformed")
	}
	key, err := certcrypto.ParsePEMPrivateKey([]byte(rec.KeyPEM))
	if err != nil {
		return nil, u.errorf(acmeerr.Internal, err, "the stored account key cannot be parsed")
	}
	return key, nil
}

// register finds or creates the account for the key and returns its URL.
//
// RFC 8555 §7.3.1: "If the server already has an account registered with
// the provided account key, then it MUST return a response with status
// code 200 (OK) and provide the URL of that account in the Location
// header field." So every replica may call this with the shared key and
// they all get the one account: it is registered once.
func (u *Upstream) register(ctx context.Context, core *api.Core) (string, error) {
	req := legoacme.Account{TermsOfServiceAgreed: true}
	if u.email != "" {
		req.Contact = []string{"mailto:" + u.email}
	}
	var acct legoacme.ExtendedAccount
	var err error
	if u.eabKeyID != "" {
		// §7.3.4: "the client ... includes an "externalAccountBinding"
		// field ... a JWS ... MAC'd with the MAC key".
		acct, err = core.Accounts.NewEAB(ctx, req, u.eabKeyID, u.eabHMAC)
	} else {
		acct, err = core.Accounts.New(ctx, req)
	}
	if err != nil {
		return "", u.mapError("registering the account", err)
	}
	if acct.Location == "" {
		return "", u.errorf(acmeerr.Internal, nil, "the CA returned no account URL")
	}
	// §7.1.6: only a valid account may order.
	if acct.Status != "" && acct.Status != legoacme.StatusValid {
		return "", u.unavailable(nil, "acmebridge's account at %s is %s", u.host, acct.Status)
	}
	u.log.Info("acme account ready", "account", acct.Location, "eab", u.eabKeyID != "")
	return acct.Location, nil
}
