package proxy

import "net/http"

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
func (s *Server) handleDirectory(w http.ResponseWriter, _ *http.Request) {
	c := s.cfg.Server
	writeJSON(w, http.StatusOK, directory{
		NewNonce:    s.base + pathNewNonce,
		NewAccount:  s.base + pathNewAccount,
		NewOrder:    s.base + pathNewOrder,
		RevokeCert:  s.base + pathRevoke,
		KeyChange:   s.base + pathKeyChange,
		NewAuthz:    s.newAuthzURL(),
		RenewalInfo: s.base + pathRenewalInfo,
		Meta: directoryMeta{
			TermsOfService:          c.TermsOfService,
			Website:                 c.Website,
			CAAIdentities:           c.CAAIdentities,
			ExternalAccountRequired: s.cfg.Accounts.EAB == "required",
			Profiles:                s.cfg.Orders.Profiles,
		},
	})
}
