package outbound

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// EnvelopeStatus is the state of a bulk envelope.
type EnvelopeStatus string

// Envelope statuses.
const (
	// EnvelopeStatusSubmitted: the envelope's messages and jobs were written.
	EnvelopeStatusSubmitted EnvelopeStatus = "submitted"
	// EnvelopeStatusRefusedCapExceeded: the bulk was over the cap; only the
	// envelope was written, as a durable record of the refusal.
	EnvelopeStatusRefusedCapExceeded EnvelopeStatus = "refused_cap_exceeded"
	// EnvelopeStatusCancelled: every recipient of the envelope was cancelled.
	EnvelopeStatusCancelled EnvelopeStatus = "cancelled"
)

// Envelope is the durable record of one BulkTrigger call, submitted or
// refused.
type Envelope struct {
	ID           uuid.UUID
	TemplateID   string
	RenderedBody string
	// RecipientConversationIDs are the requested conversations in the
	// caller's order. A refused envelope keeps only the first
	// MaxRefusedRecipientsKept (1,000); Count says how many were asked for.
	RecipientConversationIDs []int64
	// Count is the number of conversations requested.
	Count int
	// EffectiveCap is the cap in force when the envelope was written.
	EffectiveCap int
	RequestedBy  string
	RequestedAt  time.Time
	Status       EnvelopeStatus
	// RefusedReason says why a refused envelope was refused, e.g.
	// "batch_size 26 exceeds cap 25".
	RefusedReason string
	CreatedAt     time.Time
	UpdatedAt     time.Time

	// recipientsDigest is the SHA-256 of a refused envelope's whole list,
	// which a retry of the same request is compared against.
	recipientsDigest []byte
	// scheduleIn is the BulkTriggerOpts.ScheduleIn the envelope was made
	// with, compared on a replay; nil for envelopes recorded before
	// migration 007.
	scheduleIn *time.Duration
	// scheduledAt, priority and maxAttempts are the BulkTriggerOpts fields
	// of the same names the envelope was made with, compared on a replay;
	// nil when the request left them to the default.
	scheduledAt *time.Time
	priority    *int
	maxAttempts *int
}

// ListEnvelopesParams filters ListEnvelopes. A nil value means defaults.
type ListEnvelopesParams struct {
	// Limit is the most envelopes returned. Defaults to DefaultListLimit (50);
	// above MaxListLimit (500) is an error.
	Limit int
	// Status keeps only envelopes with this status; "" keeps all.
	Status EnvelopeStatus
	// After starts the page after this cursor, as a previous page's
	// NextCursor; nil starts with the newest envelope.
	After *EnvelopeListCursor
}

// ListEnvelopesResult is one page of ListEnvelopes.
type ListEnvelopesResult struct {
	// Envelopes are newest first.
	Envelopes []*Envelope
	// NextCursor is the After of the next page, or nil when no older
	// envelope matched when this page was read.
	NextCursor *EnvelopeListCursor
}

// Envelope returns the envelope with the given id, or ErrNotFound.
func (c *Client) Envelope(ctx context.Context, id uuid.UUID) (*Envelope, error) {
	if err := c.checkSchema(ctx, c.pool); err != nil {
		return nil, err
	}
	env, err := scanEnvelope(c.pool.QueryRow(ctx, c.queries.SelectEnvelope, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: envelope %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("outbound: read envelope: %w", err)
	}
	return env, nil
}

// ListEnvelopes returns a page of envelopes, newest first (by RequestedAt,
// then id), optionally of one status. Pages are positioned by cursor, as
// ListMessages' are: paging through while bulks are submitted neither
// repeats nor misses one that existed when paging began.
func (c *Client) ListEnvelopes(ctx context.Context, params *ListEnvelopesParams) (*ListEnvelopesResult, error) {
	if params == nil {
		params = &ListEnvelopesParams{}
	}
	limit, err := listLimit("ListEnvelopesParams.Limit", params.Limit)
	if err != nil {
		return nil, err
	}
	if params.Status != "" && !slices.Contains([]EnvelopeStatus{EnvelopeStatusSubmitted, EnvelopeStatusRefusedCapExceeded, EnvelopeStatusCancelled}, params.Status) {
		return nil, invalidArgument("ListEnvelopesParams.Status", "must be submitted, refused_cap_exceeded, cancelled or empty, got %q", params.Status)
	}
	after := params.After
	if after != nil && after.id == uuid.Nil {
		return nil, invalidArgument("ListEnvelopesParams.After", "is a zero cursor; use a NextCursor or EnvelopeListCursorFromEnvelope")
	}
	if err := c.checkSchema(ctx, c.pool); err != nil {
		return nil, err
	}
	// One more than the limit says whether there is a next page.
	var rows pgx.Rows
	switch {
	case params.Status == "" && after == nil:
		rows, err = c.pool.Query(ctx, c.queries.ListEnvelopes, limit+1)
	case params.Status == "":
		rows, err = c.pool.Query(ctx, c.queries.ListEnvelopesAfter, limit+1, after.requestedAt, pgUUID(after.id))
	case after == nil:
		rows, err = c.pool.Query(ctx, c.queries.ListEnvelopesByStatus, string(params.Status), limit+1)
	default:
		rows, err = c.pool.Query(ctx, c.queries.ListEnvelopesByStatusAfter, string(params.Status), limit+1, after.requestedAt, pgUUID(after.id))
	}
	if err != nil {
		return nil, fmt.Errorf("outbound: list envelopes: %w", err)
	}
	envelopes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Envelope, error) { return scanEnvelope(row) })
	if err != nil {
		return nil, fmt.Errorf("outbound: list envelopes: %w", err)
	}
	res := &ListEnvelopesResult{Envelopes: envelopes}
	if len(envelopes) > limit {
		res.Envelopes = envelopes[:limit]
		res.NextCursor = EnvelopeListCursorFromEnvelope(res.Envelopes[limit-1])
	}
	return res, nil
}

// scanEnvelope scans one row of sqltext.EnvelopeColumns.
func scanEnvelope(row pgx.Row) (*Envelope, error) {
	var (
		e             Envelope
		status        string
		requestedBy   *string
		refusedReason *string
	)
	if err := row.Scan(&e.ID, &e.TemplateID, &e.RenderedBody, &e.RecipientConversationIDs, &e.Count,
		&e.EffectiveCap, &requestedBy, &e.RequestedAt, &status, &refusedReason, &e.CreatedAt, &e.UpdatedAt, &e.recipientsDigest, &e.scheduleIn,
		&e.scheduledAt, &e.priority, &e.maxAttempts); err != nil {
		return nil, err
	}
	e.Status = EnvelopeStatus(status)
	if requestedBy != nil {
		e.RequestedBy = *requestedBy
	}
	if refusedReason != nil {
		e.RefusedReason = *refusedReason
	}
	return &e, nil
}

// Progress counts one envelope's messages by status.
type Progress struct {
	Pending     int
	Delivering  int
	Sent        int
	Failed      int
	Unconfirmed int
	Discarded   int
	Cancelled   int
}

// Total is the number of the envelope's messages.
func (p *Progress) Total() int {
	return p.Pending + p.Delivering + p.Sent + p.Failed + p.Unconfirmed + p.Discarded + p.Cancelled
}

// EnvelopeProgress counts the envelope's messages by status, or returns
// ErrNotFound. A refused envelope has no messages: every count is zero.
func (c *Client) EnvelopeProgress(ctx context.Context, id uuid.UUID) (*Progress, error) {
	if err := c.checkSchema(ctx, c.pool); err != nil {
		return nil, err
	}
	var p Progress
	err := c.pool.QueryRow(ctx, c.queries.EnvelopeProgress, id).Scan(&p.Pending, &p.Delivering, &p.Sent, &p.Failed, &p.Unconfirmed, &p.Discarded, &p.Cancelled)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: envelope %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("outbound: envelope progress: %w", err)
	}
	return &p, nil
}
