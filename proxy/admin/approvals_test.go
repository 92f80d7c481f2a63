package admin

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/store"
)

// seedApproval stores a pending approval request of directory dir.
func (e *apiEnv) seedApproval(dir, id string, names ...string) *store.ApprovalRequest {
	now := time.Now()
	r := &store.ApprovalRequest{ID: id, Directory: dir, AccountID: "acct-" + id, Names: names, Rule: "lan", Remote: "192.0.2.9",
		FirstAttempt: now, LastAttempt: now, Attempts: 1, Status: store.ApprovalPending, PendingUntil: now.Add(time.Hour)}
	require.NoError(e.t, e.st.PutApproval(e.t.Context(), r))
	return r
}

func decodeApproval(t *testing.T, body []byte) approvalView {
	t.Helper()
	var v approvalView
	require.NoError(t, json.Unmarshal(body, &v), string(body))
	return v
}

// TestApprovalsAPI: the queue lists pending requests; approve (with a
// pattern and an expiry) and deny (with a reason) go through the domain
// core, which audits who decided; bad input is refused.
func TestApprovalsAPI(t *testing.T) {
	e := newTenantAPI(t, boltStore(t))
	e.seedApproval("devices", "apr-1", "p1.floor3.corp.example.com")
	e.seedApproval("devices", "apr-2", "p2.corp.example.com")

	ids, _ := e.ids(globalTok, "/api/v1/approvals?status=pending")
	require.Equal(t, []string{"apr-1", "apr-2"}, ids)

	w := e.as(globalTok, http.MethodPost, "/api/v1/approvals/apr-1/approve", map[string]string{"pattern": "*.floor4.corp.example.com"})
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), "does not cover")
	w = e.as(globalTok, http.MethodPost, "/api/v1/approvals/apr-1/approve", map[string]string{"expires": "soon"})
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())

	w = e.as(globalTok, http.MethodPost, "/api/v1/approvals/apr-1/approve",
		map[string]string{"reason": "ticket 7", "expires": "720h", "pattern": "*.floor3.corp.example.com"})
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	v := decodeApproval(t, w.Body.Bytes())
	require.Equal(t, store.ApprovalApproved, v.Status)
	require.Equal(t, "admin", v.DecidedBy)
	require.Equal(t, "*.floor3.corp.example.com", v.Pattern)
	require.WithinDuration(t, time.Now().Add(720*time.Hour), v.Expires, time.Minute)

	w = e.as(devicesTok, http.MethodPost, "/api/v1/approvals/apr-2/deny", map[string]string{"reason": "not a printer"})
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	v = decodeApproval(t, w.Body.Bytes())
	require.Equal(t, store.ApprovalDenied, v.Status)
	require.Equal(t, "not a printer", v.Reason)
	w = e.as(devicesTok, http.MethodPost, "/api/v1/approvals/apr-2/deny", map[string]string{"pattern": "*.corp.example.com"})
	require.Equal(t, http.StatusBadRequest, w.Code, "a denial takes no pattern")

	var approved, denied []audit.Event
	for _, ev := range e.rec.ev {
		switch ev.Event {
		case audit.ApprovalApproved:
			approved = append(approved, ev)
		case audit.ApprovalDenied:
			denied = append(denied, ev)
		}
	}
	require.Len(t, approved, 1)
	require.Equal(t, "admin", approved[0].Actor)
	require.Equal(t, "apr-1", approved[0].Approval)
	require.Len(t, denied, 1)
	require.Equal(t, "admin:devices", denied[0].Actor)
	require.Equal(t, "not a printer", denied[0].Reason)

	ids, _ = e.ids(globalTok, "/api/v1/approvals?status=pending")
	require.Empty(t, ids)
	ids, _ = e.ids(globalTok, "/api/v1/approvals?status=denied")
	require.Equal(t, []string{"apr-2"}, ids)
	require.Equal(t, http.StatusBadRequest, e.as(globalTok, http.MethodGet, "/api/v1/approvals?status=maybe", nil).Code)
	require.Equal(t, http.StatusNotFound, e.as(globalTok, http.MethodPost, "/api/v1/approvals/apr-none/approve", nil).Code)
}

// TestApprovalsScoped: a token scoped to a directory sees, shows and
// decides only its directory's requests; another's is 404, as missing.
func TestApprovalsScoped(t *testing.T) {
	for name, open := range map[string]func(*testing.T) store.Store{"bolt": boltStore, "redis": redisStore} {
		t.Run(name, func(t *testing.T) {
			e := newTenantAPI(t, open(t))
			e.seedApproval("devices", "apr-dev", "p.corp.example.com")
			e.seedApproval("public", "apr-pub", "www.example.net")
			e.seedApproval("", "apr-top", "www.example.com")

			ids, dirs := e.ids(devicesTok, "/api/v1/approvals")
			require.Equal(t, []string{"apr-dev"}, ids)
			require.Equal(t, []string{"devices"}, dirs)
			ids, _ = e.ids(globalTok, "/api/v1/approvals?directory=public")
			require.Equal(t, []string{"apr-pub"}, ids)
			ids, _ = e.ids(globalTok, "/api/v1/approvals")
			require.Len(t, ids, 3)
			require.Equal(t, http.StatusForbidden, e.as(devicesTok, http.MethodGet, "/api/v1/approvals?directory=public", nil).Code)

			for _, id := range []string{"apr-pub", "apr-top"} {
				require.Equal(t, http.StatusNotFound, e.as(devicesTok, http.MethodGet, "/api/v1/approvals/"+id, nil).Code)
				require.Equal(t, http.StatusNotFound, e.as(devicesTok, http.MethodPost, "/api/v1/approvals/"+id+"/approve", nil).Code)
				require.Equal(t, http.StatusNotFound, e.as(devicesTok, http.MethodPost, "/api/v1/approvals/"+id+"/deny", nil).Code)
				r, err := e.st.GetApproval(t.Context(), id)
				require.NoError(t, err)
				require.Equal(t, store.ApprovalPending, r.Status, "another directory's request stays undecided")
			}
			require.Equal(t, http.StatusOK, e.as(devicesTok, http.MethodGet, "/api/v1/approvals/apr-dev", nil).Code)
			require.Equal(t, http.StatusOK, e.as(devicesTok, http.MethodPost, "/api/v1/approvals/apr-dev/approve", nil).Code)
			require.Equal(t, http.StatusUnauthorized, e.as("wrong", http.MethodPost, "/api/v1/approvals/apr-dev/approve", nil).Code)
		})
	}
}
