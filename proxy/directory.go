package proxy

import (
	"net/http"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/ra"
)

type directoryMeta struct {
	TermsOfService          string   `json:"termsOfService,omitempty"`
	Website                 string   `json:"website,omitempty"`
	CAAIdentities           []string `json:"caaIdentities,omitempty"`
	ExternalAccountRequired bool     `json:"externalAccountRequired"`
	// Profiles lists the offered profiles (draft-ietf-acme-profiles).
	Profiles map[string]string `json:"profiles,omitempty"`
}

type directory struct {
	NewNonce   string `json:"newNonce"`
	NewAccount string `json:"newAccount"`
	NewOrder   string `json:"newOrder"`
	// NewAuthz is offered with orders.pre_authorization (§7.4.1).
	NewAuthz   string `json:"newAuthz,omitempty"`
	RevokeCert string `json:"revokeCert"`
	KeyChange  string `json:"keyChange"`
	// RenewalInfo is the ARI resource (RFC 9773 §3).
	RenewalInfo string        `json:"renewalInfo"`
	Meta        directoryMeta `json:"meta"`
}

// handleDirectory serves the directory (RFC 8555 §7.1.1). GET is allowed
// (§6.3: "The server MUST allow GET requests for the directory and newNonce
// resources"), and so is a POST-as-GET, answered the same way without
// verification as it carries nothing to act on.
func (s *Server) handleDirectory(w http.ResponseWriter, r *http.Request) {
	name := ra.DirectoryOf(r.Context())
	d := s.ra.Directory(name)
	if d == nil {
		s.writeProblem(w, r, acmeerr.New(acmeerr.NotFound, "no resource at %s", r.URL.Path))
		return
	}
	c, root := d.Config, s.root(name)
	writeJSON(w, http.StatusOK, directory{
		NewNonce:    root + pathNewNonce,
		NewAccount:  root + pathNewAccount,
		NewOrder:    root + pathNewOrder,
		RevokeCert:  root + pathRevoke,
		KeyChange:   root + pathKeyChange,
		NewAuthz:    s.newAuthzURL(name),
		RenewalInfo: root + pathRenewalInfo,
		Meta: directoryMeta{
			TermsOfService:          c.Server.TermsOfService,
			Website:                 c.Server.Website,
			CAAIdentities:           c.Server.CAAIdentities,
			ExternalAccountRequired: c.Accounts.EAB == "required",
			Profiles:                c.Orders.Profiles,
		},
	})
}
