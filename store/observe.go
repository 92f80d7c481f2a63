package store

import (
	"context"
	"time"
)

// Observer receives the duration and outcome of each store operation.
type Observer func(op string, d time.Duration, err error)

// Observed wraps a store so that every operation is timed and reported to
// obs (the store-latency metric). The wrapper adds no behaviour otherwise.
func Observed(inner Store, obs Observer) Store {
	return &observed{Store: inner, obs: obs}
}

type observed struct {
	Store
	obs Observer
}

func (w *observed) done(op string, start time.Time, err error) { w.obs(op, time.Since(start), err) }

// NonceKey times the inner NonceKey.
func (w *observed) NonceKey(ctx context.Context) ([]byte, error) {
	start := time.Now()
	k, err := w.Store.NonceKey(ctx)
	w.done("NonceKey", start, err)
	return k, err
}

// UseNonce times the inner UseNonce.
func (w *observed) UseNonce(ctx context.Context, nonce string, until time.Time) (bool, error) {
	start := time.Now()
	v, err := w.Store.UseNonce(ctx, nonce, until)
	w.done("UseNonce", start, err)
	return v, err
}

// ReadPOST times the inner ReadPOST: one operation, whatever it reads.
func (w *observed) ReadPOST(ctx context.Context, q *POSTRead) (*POSTRecords, error) {
	start := time.Now()
	v, err := w.Store.ReadPOST(ctx, q)
	w.done("ReadPOST", start, err)
	return v, err
}

// CreateAccount times the inner CreateAccount.
func (w *observed) CreateAccount(ctx context.Context, a *Account) error {
	start := time.Now()
	err := w.Store.CreateAccount(ctx, a)
	w.done("CreateAccount", start, err)
	return err
}

// GetAccount times the inner GetAccount.
func (w *observed) GetAccount(ctx context.Context, id string) (*Account, error) {
	start := time.Now()
	v, err := w.Store.GetAccount(ctx, id)
	w.done("GetAccount", start, err)
	return v, err
}

// GetAccountByKey times the inner GetAccountByKey.
func (w *observed) GetAccountByKey(ctx context.Context, tp string) (*Account, error) {
	start := time.Now()
	v, err := w.Store.GetAccountByKey(ctx, tp)
	w.done("GetAccountByKey", start, err)
	return v, err
}

// UpdateAccount times the inner UpdateAccount.
func (w *observed) UpdateAccount(ctx context.Context, a *Account) error {
	start := time.Now()
	err := w.Store.UpdateAccount(ctx, a)
	w.done("UpdateAccount", start, err)
	return err
}

// CreateOrder times the inner CreateOrder.
func (w *observed) CreateOrder(ctx context.Context, o *Order, authzs []*Authorization) error {
	start := time.Now()
	err := w.Store.CreateOrder(ctx, o, authzs)
	w.done("CreateOrder", start, err)
	return err
}

// GetOrder times the inner GetOrder.
func (w *observed) GetOrder(ctx context.Context, id string) (*Order, error) {
	start := time.Now()
	v, err := w.Store.GetOrder(ctx, id)
	w.done("GetOrder", start, err)
	return v, err
}

// UpdateOrder times the inner UpdateOrder.
func (w *observed) UpdateOrder(ctx context.Context, o *Order) error {
	start := time.Now()
	err := w.Store.UpdateOrder(ctx, o)
	w.done("UpdateOrder", start, err)
	return err
}

// ListOrders times the inner ListOrders.
func (w *observed) ListOrders(ctx context.Context, accountID, cursor string, limit int) (Page, error) {
	start := time.Now()
	v, err := w.Store.ListOrders(ctx, accountID, cursor, limit)
	w.done("ListOrders", start, err)
	return v, err
}

// CreateAuthz times the inner CreateAuthz.
func (w *observed) CreateAuthz(ctx context.Context, a *Authorization) error {
	start := time.Now()
	err := w.Store.CreateAuthz(ctx, a)
	w.done("CreateAuthz", start, err)
	return err
}

// FindValidAuthz times the inner FindValidAuthz.
func (w *observed) FindValidAuthz(ctx context.Context, accountID string, id Identifier, wildcard bool, now time.Time) (*Authorization, error) {
	start := time.Now()
	v, err := w.Store.FindValidAuthz(ctx, accountID, id, wildcard, now)
	w.done("FindValidAuthz", start, err)
	return v, err
}

// GetAuthz times the inner GetAuthz.
func (w *observed) GetAuthz(ctx context.Context, id string) (*Authorization, error) {
	start := time.Now()
	v, err := w.Store.GetAuthz(ctx, id)
	w.done("GetAuthz", start, err)
	return v, err
}

// UpdateAuthz times the inner UpdateAuthz.
func (w *observed) UpdateAuthz(ctx context.Context, a *Authorization) error {
	start := time.Now()
	err := w.Store.UpdateAuthz(ctx, a)
	w.done("UpdateAuthz", start, err)
	return err
}

// PutCertificate times the inner PutCertificate.
func (w *observed) PutCertificate(ctx context.Context, c *Certificate, o *Order) error {
	start := time.Now()
	err := w.Store.PutCertificate(ctx, c, o)
	w.done("PutCertificate", start, err)
	return err
}

// GetCertificate times the inner GetCertificate.
func (w *observed) GetCertificate(ctx context.Context, id string) (*Certificate, error) {
	start := time.Now()
	v, err := w.Store.GetCertificate(ctx, id)
	w.done("GetCertificate", start, err)
	return v, err
}

// GetCertificateBySerial times the inner GetCertificateBySerial.
func (w *observed) GetCertificateBySerial(ctx context.Context, serial string) (*Certificate, error) {
	start := time.Now()
	v, err := w.Store.GetCertificateBySerial(ctx, serial)
	w.done("GetCertificateBySerial", start, err)
	return v, err
}

// UpdateCertificate times the inner UpdateCertificate.
func (w *observed) UpdateCertificate(ctx context.Context, c *Certificate) error {
	start := time.Now()
	err := w.Store.UpdateCertificate(ctx, c)
	w.done("UpdateCertificate", start, err)
	return err
}

// PutEABKey times the inner PutEABKey.
func (w *observed) PutEABKey(ctx context.Context, k *EABKey) error {
	start := time.Now()
	err := w.Store.PutEABKey(ctx, k)
	w.done("PutEABKey", start, err)
	return err
}

// GetEABKey times the inner GetEABKey.
func (w *observed) GetEABKey(ctx context.Context, id string) (*EABKey, error) {
	start := time.Now()
	v, err := w.Store.GetEABKey(ctx, id)
	w.done("GetEABKey", start, err)
	return v, err
}

// UpdateEABKey times the inner UpdateEABKey.
func (w *observed) UpdateEABKey(ctx context.Context, k *EABKey) error {
	start := time.Now()
	err := w.Store.UpdateEABKey(ctx, k)
	w.done("UpdateEABKey", start, err)
	return err
}

// PutApproval times the inner PutApproval.
func (w *observed) PutApproval(ctx context.Context, r *ApprovalRequest) error {
	start := time.Now()
	err := w.Store.PutApproval(ctx, r)
	w.done("PutApproval", start, err)
	return err
}

// GetApproval times the inner GetApproval.
func (w *observed) GetApproval(ctx context.Context, id string) (*ApprovalRequest, error) {
	start := time.Now()
	v, err := w.Store.GetApproval(ctx, id)
	w.done("GetApproval", start, err)
	return v, err
}

// UpdateApproval times the inner UpdateApproval.
func (w *observed) UpdateApproval(ctx context.Context, r *ApprovalRequest) error {
	start := time.Now()
	err := w.Store.UpdateApproval(ctx, r)
	w.done("UpdateApproval", start, err)
	return err
}

// AccountApprovals times the inner AccountApprovals.
func (w *observed) AccountApprovals(ctx context.Context, accountID string, limit int) ([]*ApprovalRequest, error) {
	start := time.Now()
	v, err := w.Store.AccountApprovals(ctx, accountID, limit)
	w.done("AccountApprovals", start, err)
	return v, err
}

// EnqueueJob times the inner EnqueueJob.
func (w *observed) EnqueueJob(ctx context.Context, j *Job, o *Order, unchanged ...Unchanged) error {
	start := time.Now()
	err := w.Store.EnqueueJob(ctx, j, o, unchanged...)
	w.done("EnqueueJob", start, err)
	return err
}

// ClaimJob times the inner ClaimJob.
func (w *observed) ClaimJob(ctx context.Context, owner string, now time.Time, lease time.Duration) (*Job, error) {
	start := time.Now()
	v, err := w.Store.ClaimJob(ctx, owner, now, lease)
	w.done("ClaimJob", start, err)
	return v, err
}

// UpdateJob times the inner UpdateJob.
func (w *observed) UpdateJob(ctx context.Context, j *Job, owner string) error {
	start := time.Now()
	err := w.Store.UpdateJob(ctx, j, owner)
	w.done("UpdateJob", start, err)
	return err
}

// GetJob times the inner GetJob.
func (w *observed) GetJob(ctx context.Context, orderID string) (*Job, error) {
	start := time.Now()
	v, err := w.Store.GetJob(ctx, orderID)
	w.done("GetJob", start, err)
	return v, err
}

// DeleteJob times the inner DeleteJob.
func (w *observed) DeleteJob(ctx context.Context, orderID string) error {
	start := time.Now()
	err := w.Store.DeleteJob(ctx, orderID)
	w.done("DeleteJob", start, err)
	return err
}

// StartValidation times the inner StartValidation.
func (w *observed) StartValidation(ctx context.Context, a *Authorization, v *Validation) error {
	start := time.Now()
	err := w.Store.StartValidation(ctx, a, v)
	w.done("StartValidation", start, err)
	return err
}

// ClaimValidation times the inner ClaimValidation.
func (w *observed) ClaimValidation(ctx context.Context, owner string, now time.Time, lease time.Duration) (*Validation, error) {
	start := time.Now()
	v, err := w.Store.ClaimValidation(ctx, owner, now, lease)
	w.done("ClaimValidation", start, err)
	return v, err
}

// GetValidation times the inner GetValidation.
func (w *observed) GetValidation(ctx context.Context, authzID string) (*Validation, error) {
	start := time.Now()
	v, err := w.Store.GetValidation(ctx, authzID)
	w.done("GetValidation", start, err)
	return v, err
}

// FinishValidation times the inner FinishValidation.
func (w *observed) FinishValidation(ctx context.Context, a *Authorization) error {
	start := time.Now()
	err := w.Store.FinishValidation(ctx, a)
	w.done("FinishValidation", start, err)
	return err
}

// DeleteValidation times the inner DeleteValidation.
func (w *observed) DeleteValidation(ctx context.Context, authzID string) error {
	start := time.Now()
	err := w.Store.DeleteValidation(ctx, authzID)
	w.done("DeleteValidation", start, err)
	return err
}

// List times the inner List.
func (w *observed) List(ctx context.Context, kind Kind, cursor string, limit int) (Page, error) {
	start := time.Now()
	v, err := w.Store.List(ctx, kind, cursor, limit)
	w.done("List", start, err)
	return v, err
}

// ListExpiring times the inner ListExpiring.
func (w *observed) ListExpiring(ctx context.Context, before time.Time, cursor string, limit int) (Page, error) {
	start := time.Now()
	v, err := w.Store.ListExpiring(ctx, before, cursor, limit)
	w.done("ListExpiring", start, err)
	return v, err
}

// Sweep times the inner Sweep.
func (w *observed) Sweep(ctx context.Context, now time.Time, r Retention, limit int) (Swept, error) {
	start := time.Now()
	v, err := w.Store.Sweep(ctx, now, r, limit)
	w.done("Sweep", start, err)
	return v, err
}

// Ping times the inner Ping.
func (w *observed) Ping(ctx context.Context) error {
	start := time.Now()
	err := w.Store.Ping(ctx)
	w.done("Ping", start, err)
	return err
}

// SpendRates times the inner SpendRates.
func (w *observed) SpendRates(ctx context.Context, spends []RateSpend, now time.Time) ([]RateDecision, error) {
	start := time.Now()
	v, err := w.Store.SpendRates(ctx, spends, now)
	w.done("SpendRates", start, err)
	return v, err
}

// ListNewest times the inner ListNewest.
func (w *observed) ListNewest(ctx context.Context, kind Kind, cursor string, limit int) (Page, error) {
	start := time.Now()
	p, err := w.Store.ListNewest(ctx, kind, cursor, limit)
	w.done("ListNewest", start, err)
	return p, err
}
