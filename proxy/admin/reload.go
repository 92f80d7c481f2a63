package admin

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/acmebridge/acmebridge/audit"
)

// reloadTimeout bounds a reload asked through the API (building new
// upstreams may log in to Vault).
const reloadTimeout = time.Minute

// reloadView answers POST /api/v1/reload.
type reloadView struct {
	// Generation is the configuration generation this replica runs now.
	Generation int64 `json:"generation"`
}

// reload re-reads the configuration file (this replica's, and through the
// store every replica's): 200 with the generation in force, 422 with the
// reason when the file was refused (the running configuration stays).
func (a *api) reload(w http.ResponseWriter, r *http.Request) {
	if a.Reloader == nil {
		fail(w, http.StatusNotFound, "reload is not available on this server")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), reloadTimeout)
	defer cancel()
	gen, err := a.Reloader.Reload(ctx)
	if err != nil {
		a.record(r, audit.Event{Event: audit.AdminAction, Reason: "configuration reload refused: " + err.Error()})
		fail(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	a.record(r, audit.Event{Event: audit.AdminAction, Reason: fmt.Sprintf("configuration reloaded (generation %d)", gen)})
	writeJSON(w, http.StatusOK, reloadView{Generation: gen})
}
