package ra

import (
	"context"
	"errors"
	"net/mail"
	"strings"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/core"
	"github.com/acmebridge/acmebridge/store"
)

// maxContacts caps the contacts of one account.
const maxContacts = 10

// checkContacts validates contact URLs (§7.3: "the server MUST ... return an
// error of type unsupportedContact" for schemes it does not support and
// invalidContact for invalid ones).
func checkContacts(cfg *configs.Config, contacts []string) error {
	if cfg.Accounts.RequireContact && len(contacts) == 0 {
		return acmeerr.New(acmeerr.InvalidContact, "a contact is required")
	}
	if len(contacts) > maxContacts {
		return acmeerr.New(acmeerr.InvalidContact, "at most %d contacts", maxContacts)
	}
	for _, c := range contacts {
		addr, ok := strings.CutPrefix(c, "mailto:")
		if !ok {
			return acmeerr.New(acmeerr.UnsupportedContact, "contact %s: only mailto: is supported", acmeerr.Quote(c))
		}
		// §7.3: "mailto" URLs with hfields or several addresses are refused.
		if strings.ContainsAny(addr, "?,; \t") || len(addr) > 254 {
			return acmeerr.New(acmeerr.InvalidContact, "contact %s is not a single email address", acmeerr.Quote(c))
		}
		a, err := mail.ParseAddress(addr)
		if err != nil || a.Address != addr || !strings.Contains(addr[strings.LastIndex(addr, "@")+1:], ".") {
			return acmeerr.New(acmeerr.InvalidContact, "contact %s is not a valid email address", acmeerr.Quote(c))
		}
	}
	return nil
}

// NewAccountRequest is a newAccount (RFC 8555 §7.3) whose JWS verified.
type NewAccountRequest struct {
	// JWK is the account key as JSON; Thumbprint its RFC 7638 thumbprint.
	JWK        []byte
	Thumbprint string
	// Contact, TermsAgreed and OnlyReturnExisting are the payload's.
	Contact            []string
	TermsAgreed        bool
	OnlyReturnExisting bool
	// EAB is the request's external account binding, nil for none. It
	// is looked at only when an account is to be created (RFC 8555
	// §7.3.4), so a client registering again with its binding finds its
	// account.
	EAB *EABBinding
	// Remote is the client's address.
	Remote string
}

// NewAccount finds the account of a key or creates one (RFC 8555 §7.3),
// binding the EAB key in the same store write. created says which.
func (ra *RA) NewAccount(ctx context.Context, req NewAccountRequest) (acct *store.Account, created bool, err error) {
	// §7.3.1: "If the server already has an account registered with the
	// provided account key, then it MUST return a response with status
	// code 200 (OK) and provide the URL of that account in the Location
	// header field."
	d, err := ra.dir(ctx)
	if err != nil {
		return nil, false, err
	}
	existing, err := ra.store.GetAccountByKey(ctx, req.Thumbprint)
	switch {
	case err == nil && existing.Directory != d.Name:
		// The key's account was made in another directory, for which
		// this one has no account (an account key is one account's in
		// the whole server). The signer holds the key, so telling it
		// so reveals nothing it does not know.
		if req.OnlyReturnExisting {
			return nil, false, acmeerr.New(acmeerr.AccountDoesNotExist, "no account exists with this key")
		}
		return nil, false, acmeerr.New(acmeerr.Unauthorized, "this key is the account key of another directory's account; use another key here")
	case err == nil:
		// §7.3.6: a request from a deactivated account is a 401
		// unauthorized, newAccount with its key included.
		if existing.Status != store.StatusValid {
			return nil, false, acmeerr.New(acmeerr.AccountNotValid, "the account of this key is %s", existing.Status)
		}
		return existing, false, nil
	case !errors.Is(err, store.ErrNotFound):
		return nil, false, storeDown(err)
	}
	// §7.3.1: "If this field is present with the value "true", then the
	// server MUST NOT create a new account if one does not already exist.
	// ... return an error response with status code 400 (Bad Request) and
	// type "urn:ietf:params:acme:error:accountDoesNotExist"".
	if req.OnlyReturnExisting {
		return nil, false, acmeerr.New(acmeerr.AccountDoesNotExist, "no account exists with this key")
	}
	if err := checkContacts(d.Config, req.Contact); err != nil {
		return nil, false, err
	}
	// §7.3: "If the server wishes to require the client to agree to terms
	// under which the ACME service is to be used, it MUST indicate the URL
	// where such terms can be accessed in the "termsOfService" subfield".
	if d.Config.Accounts.RequireTermsAgreement && d.Config.Server.TermsOfService != "" && !req.TermsAgreed {
		return nil, false, acmeerr.New(acmeerr.Malformed, "you must agree to the terms of service at %s", d.Config.Server.TermsOfService)
	}
	acct = &store.Account{
		ID:                   core.RandomID(),
		Status:               store.StatusValid,
		Contact:              req.Contact,
		JWK:                  req.JWK,
		KeyThumbprint:        req.Thumbprint,
		TermsOfServiceAgreed: req.TermsAgreed,
		CreatedAt:            ra.now(),
		CreatedFrom:          req.Remote,
		Directory:            d.Name,
	}
	kid := ""
	k, err := ra.BindableKey(ctx, req.EAB)
	if err != nil {
		return nil, false, err
	}
	if k != nil {
		kid = k.ID
		acct.EABKeyID, acct.Group, acct.Allow = k.ID, k.Group, k.Allow
	}
	spent, err := d.lim.newAccount(ctx, acct.CreatedFrom, acct.Group)
	if err != nil {
		return nil, false, err
	}
	if err := ra.store.CreateAccount(ctx, acct); err != nil {
		d.lim.refund(ctx, spent)
		switch {
		case errors.Is(err, store.ErrConflict) && kid != "":
			return nil, false, acmeerr.New(acmeerr.Unauthorized, "external account key %q is already bound to an account", kid)
		case errors.Is(err, store.ErrConflict):
			// A concurrent newAccount with the same key won; answer as
			// for an existing account.
			if a, gerr := ra.store.GetAccountByKey(ctx, req.Thumbprint); gerr == nil {
				return a, false, nil
			}
			return nil, false, storeDown(err)
		case errors.Is(err, store.ErrNotFound):
			return nil, false, acmeerr.New(acmeerr.Unauthorized, "unknown external account key %q", kid)
		default:
			return nil, false, storeDown(err)
		}
	}
	ra.log.Info("account created", "account", acct.ID, "eab_kid", kid, "remote", acct.CreatedFrom)
	ra.record(ctx, audit.Event{Event: audit.AccountCreated, Account: acct.ID, EABKey: kid, Contacts: acct.Contact})
	if kid != "" {
		ra.record(ctx, audit.Event{Event: audit.EABBound, Account: acct.ID, EABKey: kid})
	}
	return acct, true, nil
}

// Account is the account a "kid" names (RFC 8555 §6.2), for the
// directory ctx names: an account of another directory does not exist
// there (§6.2: "If the client sends a JWS signed with a "kid" for which
// the server has no account, the server MUST return ... accountDoesNotExist").
func (ra *RA) Account(ctx context.Context, id string) (*store.Account, error) {
	acct, err := ra.store.GetAccount(ctx, id)
	return AccountIn(ctx, id, acct, err)
}

// AccountIn is Account for the record (or error) of account id read
// already, as store.ReadPOST reads it (a nil acct without an error is not
// found).
func AccountIn(ctx context.Context, id string, acct *store.Account, err error) (*store.Account, error) {
	if err == nil && acct == nil {
		err = store.ErrNotFound
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, acmeerr.New(acmeerr.AccountDoesNotExist, "no account %s", acmeerr.Quote(id))
	case err != nil:
		return nil, storeDown(err)
	case acct.Directory != DirectoryOf(ctx):
		return nil, acmeerr.New(acmeerr.AccountDoesNotExist, "no account %s", acmeerr.Quote(id))
	}
	return acct, nil
}

// AccountUpdate is a POST to an account URL (RFC 8555 §7.3.2, §7.3.6):
// new contacts (nil keeps them), and a status ("" or "deactivated").
type AccountUpdate struct {
	Contact *[]string
	Status  string
}

// UpdateAccount changes an account's contacts or deactivates it.
func (ra *RA) UpdateAccount(ctx context.Context, acct *store.Account, u AccountUpdate) (*store.Account, error) {
	switch u.Status {
	case "":
	case store.StatusDeactivated:
		// §7.3.6: "a client can deactivate an account by posting a signed
		// update to the account URL with a status field of "deactivated"".
		acct.Status = store.StatusDeactivated
	default:
		return nil, acmeerr.New(acmeerr.Malformed, "status may only be changed to deactivated")
	}
	if u.Contact != nil {
		if err := checkContacts(ra.dirNamed(acct.Directory).Config, *u.Contact); err != nil {
			return nil, err
		}
		acct.Contact = *u.Contact
	}
	if err := ra.store.UpdateAccount(ctx, acct); err != nil {
		return nil, storeErr(err, "account")
	}
	if acct.Status == store.StatusDeactivated {
		ra.log.Info("account deactivated", "account", acct.ID)
		ra.record(ctx, audit.Event{Event: audit.AccountDeactivated, Account: acct.ID})
	} else {
		ra.record(ctx, audit.Event{Event: audit.AccountUpdated, Account: acct.ID, Contacts: acct.Contact})
	}
	return acct, nil
}

// KeyInUseError refuses a key change to a key another account holds
// (RFC 8555 §7.3.5: 409 Conflict "and provide the URL of that account in
// the Location header field"). It unwraps to a Conflict.
type KeyInUseError struct {
	AccountID string
	Err       *acmeerr.Error
}

// Error implements error.
func (e *KeyInUseError) Error() string { return e.Err.Error() }

// Unwrap returns the Conflict.
func (e *KeyInUseError) Unwrap() error { return e.Err }

// KeyChange rolls an account over to a new key (RFC 8555 §7.3.5) whose
// inner JWS the transport verified: oldThumbprint is the thumbprint of
// the keyChange object's oldKey, newJWK and newThumbprint the new key's.
func (ra *RA) KeyChange(ctx context.Context, acct *store.Account, oldThumbprint string, newJWK []byte, newThumbprint string) (*store.Account, error) {
	// §7.3.5: "Check that the "oldKey" field ... is the key currently
	// associated with the account".
	if oldThumbprint != acct.KeyThumbprint {
		return nil, acmeerr.New(acmeerr.Unauthorized, "keyChange oldKey is not the account's current key")
	}
	// §7.3.5: "Check that no account exists whose account key is the same
	// as the key in the "jwk" header parameter of the inner JWS. If there
	// is such an account, then the server MUST NOT update the account's
	// key, and it MUST return ... 409 (Conflict)".
	if other, err := ra.store.GetAccountByKey(ctx, newThumbprint); err == nil {
		if other.Directory != acct.Directory {
			// Another directory's account: its URL is not this one's
			// to give.
			return nil, acmeerr.New(acmeerr.Conflict, "the new key belongs to another account")
		}
		return nil, &KeyInUseError{AccountID: other.ID, Err: acmeerr.New(acmeerr.Conflict, "the new key belongs to another account")}
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, storeDown(err)
	}
	acct.JWK, acct.KeyThumbprint = newJWK, newThumbprint
	if err := ra.store.UpdateAccount(ctx, acct); err != nil {
		return nil, storeErr(err, "account")
	}
	ra.log.Info("account key rolled over", "account", acct.ID)
	ra.record(ctx, audit.Event{Event: audit.AccountKeyRolled, Account: acct.ID})
	return acct, nil
}
