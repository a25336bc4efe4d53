package outbound

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cairnloop/outbound/internal/dbutil"
	"github.com/cairnloop/outbound/internal/hostdata"
	"github.com/cairnloop/outbound/internal/sqltext"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// envelopeOutcomes lists every EnvelopeOutcome, in the order above.
var envelopeOutcomes = []EnvelopeOutcome{
	EnvelopeOutcomeInProgress, EnvelopeOutcomeCompleted, EnvelopeOutcomeCompletedWithFailures,
	EnvelopeOutcomeCancelled, EnvelopeOutcomePartlyCancelled, EnvelopeOutcomeRefused,
}

// envelopeRecord is an envelope as stored: the Envelope every read returns,
// and the request it was made with, which only a replay compares.
type envelopeRecord struct {
	*Envelope

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
	// dataDigest and recipientDigests are the SHA-256 of the shared data
	// and of each recipient's own body, data and time, in the order of
	// RecipientConversationIDs, compared on a replay; nil for none.
	dataDigest       []byte
	recipientDigests [][]byte
}

// ListEnvelopesParams filters ListEnvelopes. A nil value means defaults.
type ListEnvelopesParams struct {
	// Limit is the most envelopes returned. Defaults to DefaultListLimit (50);
	// above MaxListLimit (500) is an error.
	Limit int
	// Status keeps only envelopes with this status; "" keeps all.
	Status EnvelopeStatus
	// Outcome keeps only envelopes with this outcome; "" keeps all. It
	// cannot be combined with Status. The page is found by reading
	// envelopes newest first and deriving each one's outcome from its
	// messages, so a rare outcome costs a read of the envelopes skipped.
	Outcome EnvelopeOutcome
	// IncludeBody reads each envelope's RenderedBody. Without it the body
	// is empty and RenderedBodyBytes gives its length, so that a page takes
	// memory in proportion to its rows, not to its bodies.
	IncludeBody bool
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
	return c.envelope(ctx, c.pool, id)
}

// EnvelopeTx is Envelope inside the caller's transaction, as River's
// JobGetTx is: it sees an envelope that tx has written and not yet committed.
func (c *Client) EnvelopeTx(ctx context.Context, tx pgx.Tx, id uuid.UUID) (*Envelope, error) {
	if tx == nil {
		return nil, invalidArgument("tx", "must not be nil")
	}
	return c.envelope(ctx, tx, id)
}

func (c *Client) envelope(ctx context.Context, q querier, id uuid.UUID) (*Envelope, error) {
	if err := c.checkSchema(ctx, q); err != nil {
		return nil, err
	}
	env, err := scanEnvelopeWithOutcome(q.QueryRow(ctx, c.queries.SelectEnvelope, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: envelope %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("outbound: read envelope: %w", err)
	}
	return env, nil
}

// EnvelopePreview returns the envelope with the given id, as Envelope does,
// but with at most the first maxBodyBytes bytes of its RenderedBody, cut
// back to a whole character, as Client.MessagePreview does for a message.
func (c *Client) EnvelopePreview(ctx context.Context, id uuid.UUID, maxBodyBytes int) (*Envelope, error) {
	if maxBodyBytes <= 0 || maxBodyBytes > maxMaxContentBytes {
		return nil, invalidArgument("maxBodyBytes", "must be between 1 and %d, got %d", maxMaxContentBytes, maxBodyBytes)
	}
	if err := c.checkSchema(ctx, c.pool); err != nil {
		return nil, err
	}
	env, err := scanEnvelopeWithOutcome(c.pool.QueryRow(ctx, c.queries.SelectEnvelopePreview, id, maxBodyBytes))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: envelope %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("outbound: read envelope: %w", err)
	}
	env.RenderedBody = cutToBytes(env.RenderedBody, maxBodyBytes)
	return env, nil
}

// ListEnvelopes returns a page of envelopes, newest first (by RequestedAt,
// then id), optionally of one status or one outcome. Pages are positioned by cursor, as
// ListMessages' are: paging through while bulks are submitted neither
// repeats nor misses one that existed when paging began.
func (c *Client) ListEnvelopes(ctx context.Context, params *ListEnvelopesParams) (*ListEnvelopesResult, error) {
	return c.listEnvelopes(ctx, c.pool, params)
}

// ListEnvelopesTx is ListEnvelopes inside the caller's transaction, as River's
// JobListTx is: it sees the envelopes that tx has written and not yet committed.
func (c *Client) ListEnvelopesTx(ctx context.Context, tx pgx.Tx, params *ListEnvelopesParams) (*ListEnvelopesResult, error) {
	if tx == nil {
		return nil, invalidArgument("tx", "must not be nil")
	}
	return c.listEnvelopes(ctx, tx, params)
}

func (c *Client) listEnvelopes(ctx context.Context, q querier, params *ListEnvelopesParams) (*ListEnvelopesResult, error) {
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
	if params.Outcome != "" && !slices.Contains(envelopeOutcomes, params.Outcome) {
		return nil, invalidArgument("ListEnvelopesParams.Outcome", "must be one of %v or empty, got %q", envelopeOutcomes, params.Outcome)
	}
	if params.Outcome != "" && params.Status != "" {
		return nil, invalidArgument("ListEnvelopesParams.Outcome", "cannot be combined with Status; set one of them")
	}
	after := params.After
	if after != nil && after.id == uuid.Nil {
		return nil, invalidArgument("ListEnvelopesParams.After", "is a zero cursor; use a NextCursor or EnvelopeListCursorFromEnvelope")
	}
	if err := c.checkSchema(ctx, q); err != nil {
		return nil, err
	}
	// One more than the limit says whether there is a next page.
	filter, args := sqltext.EnvelopeFilter{Body: params.IncludeBody}, []any{limit + 1}
	switch {
	case params.Status != "":
		filter.Status = true
		args = append(args, string(params.Status))
	case params.Outcome != "":
		filter.Outcome = true
		args = append(args, string(params.Outcome))
	}
	if after != nil {
		filter.After = true
		args = append(args, after.requestedAt, dbutil.PgUUID(after.id))
	}
	rows, err := q.Query(ctx, c.queries.ListEnvelopes[filter], args...)
	if err != nil {
		return nil, fmt.Errorf("outbound: list envelopes: %w", err)
	}
	envelopes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Envelope, error) { return scanEnvelopeWithOutcome(row) })
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

// scanEnvelopeWithOutcome scans one row of sqltext.EnvelopeColumns followed
// by the envelope's outcome.
func scanEnvelopeWithOutcome(row pgx.Row) (*Envelope, error) {
	rec, err := scanEnvelopeRecordWithOutcome(row)
	if err != nil {
		return nil, err
	}
	return rec.Envelope, nil
}

// scanEnvelopeRecordWithOutcome is scanEnvelopeWithOutcome, keeping the
// stored request for a replay to compare.
func scanEnvelopeRecordWithOutcome(row pgx.Row) (*envelopeRecord, error) {
	var outcome string
	rec, err := scanEnvelopeRecord(row, &outcome)
	if err != nil {
		return nil, err
	}
	rec.Outcome = EnvelopeOutcome(outcome)
	return rec, nil
}

// scanEnvelope scans one row of sqltext.EnvelopeColumns, followed by the
// columns extra scans into, if any.
func scanEnvelope(row pgx.Row, extra ...any) (*Envelope, error) {
	rec, err := scanEnvelopeRecord(row, extra...)
	if err != nil {
		return nil, err
	}
	return rec.Envelope, nil
}

// scanEnvelopeRecord is scanEnvelope, keeping the stored request.
func scanEnvelopeRecord(row pgx.Row, extra ...any) (*envelopeRecord, error) {
	var (
		e             = &envelopeRecord{Envelope: &Envelope{}}
		status        string
		requestedBy   *string
		refusedReason *string
		cancelledBy   *string
		cancelledAt   *time.Time
		body          pgtype.Text
		data          []byte
	)
	dest := append([]any{&e.ID, &e.TemplateID, &body, &e.RecipientConversationIDs, &e.Count,
		&e.EffectiveCap, &requestedBy, &e.RequestedAt, &status, &refusedReason, &e.CreatedAt, &e.UpdatedAt, &e.recipientsDigest, &e.scheduleIn,
		&e.scheduledAt, &e.priority, &e.maxAttempts, &cancelledBy, &cancelledAt, &data, &e.dataDigest, &e.recipientDigests,
		&e.RenderedBodyBytes}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	e.Data = hostdata.Decode(data)
	e.RenderedBody, e.Status = body.String, EnvelopeStatus(status)
	e.CancelledBy, e.CancelledAt = dbutil.Deref(cancelledBy), dbutil.Deref(cancelledAt)
	if requestedBy != nil {
		e.RequestedBy = *requestedBy
	}
	if refusedReason != nil {
		e.RefusedReason = *refusedReason
	}
	return e, nil
}

// EnvelopeProgress counts the envelope's messages by status, or returns
// ErrNotFound. A refused envelope has no messages: every count is zero.
func (c *Client) EnvelopeProgress(ctx context.Context, id uuid.UUID) (*Progress, error) {
	return c.envelopeProgress(ctx, c.pool, id)
}

// EnvelopeProgressTx is EnvelopeProgress inside the caller's transaction:
// it counts the messages as tx sees them, its own changes included.
func (c *Client) EnvelopeProgressTx(ctx context.Context, tx pgx.Tx, id uuid.UUID) (*Progress, error) {
	if tx == nil {
		return nil, invalidArgument("tx", "must not be nil")
	}
	return c.envelopeProgress(ctx, tx, id)
}

func (c *Client) envelopeProgress(ctx context.Context, q querier, id uuid.UUID) (*Progress, error) {
	if err := c.checkSchema(ctx, q); err != nil {
		return nil, err
	}
	var p Progress
	err := q.QueryRow(ctx, c.queries.EnvelopeProgress, id).Scan(&p.Pending, &p.Delivering, &p.Sent, &p.Failed, &p.Unconfirmed, &p.Discarded, &p.Cancelled)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: envelope %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("outbound: envelope progress: %w", err)
	}
	return &p, nil
}

// MaxRefusedRecipientsKept is the most recipient ids a refused envelope
// keeps: the first ones of the list. The envelope keeps the full count and a
// SHA-256 digest of the whole list, so that its row stays small (8 KiB of
// ids) however long the refused list was.
const MaxRefusedRecipientsKept = 1000

// envelopeRequest is what one BulkTrigger call asks of its envelope: the row
// insertEnvelope writes, and what a retry with the same envelope id is
// compared with.
type envelopeRequest struct {
	id         uuid.UUID
	templateID string
	body       string
	// recipients is the whole list, in the caller's order.
	recipients []int64
	// cap is the cap in force for the call.
	cap    int
	actor  string
	status EnvelopeStatus
	// refusedReason is set for a refused envelope only.
	refusedReason string
	scheduleIn    time.Duration
	scheduledAt   time.Time
	priority      int
	maxAttempts   int
	// data is the shared data as JSON, and dataDigest its SHA-256; nil for
	// none.
	data       []byte
	dataDigest []byte
	// recipientDigests are the digests of each recipient's own parts, in
	// the order of recipients; nil when none has any.
	recipientDigests [][]byte
}

// insertEnvelope writes the envelope unless its id exists, and returns it;
// pgx.ErrNoRows means the id exists. A refused envelope keeps the first
// MaxRefusedRecipientsKept recipients and a digest of the whole list.
func (c *Client) insertEnvelope(ctx context.Context, tx pgx.Tx, req *envelopeRequest) (*Envelope, error) {
	kept, digest := req.recipients, []byte(nil)
	if req.status == EnvelopeStatusRefusedCapExceeded {
		kept = req.recipients[:min(len(req.recipients), MaxRefusedRecipientsKept)]
		sum := recipientsDigest(req.recipients)
		digest = sum[:]
	}
	args := sqltext.InsertEnvelopeArgs{
		ID:            dbutil.PgUUID(req.id),
		TemplateID:    req.templateID,
		RenderedBody:  req.body,
		Recipients:    kept,
		Count:         len(req.recipients),
		EffectiveCap:  req.cap,
		RequestedBy:   dbutil.NullIfEmpty(req.actor),
		Status:        string(req.status),
		RefusedReason: dbutil.NullIfEmpty(req.refusedReason),
		Digest:        digest,
		ScheduleIn:    req.scheduleIn,
		ScheduledAt:   dbutil.NullIfZeroTime(req.scheduledAt),
		Priority:      dbutil.NullIfZero(req.priority),
		MaxAttempts:   dbutil.NullIfZero(req.maxAttempts),
		DataDigest:    req.dataDigest,
	}
	if req.data != nil {
		data := string(req.data)
		args.Data = &data
	}
	if req.status == EnvelopeStatusSubmitted {
		args.RecipientDigests = req.recipientDigests
	}
	env, err := scanEnvelope(tx.QueryRow(ctx, c.queries.InsertEnvelope.SQL, args.Args()...))
	if err != nil {
		return nil, err
	}
	// The insert does not send the body back: it is the caller's.
	env.RenderedBody = req.body
	// A new envelope's messages are all pending, being written with it.
	env.Outcome = EnvelopeOutcomeInProgress
	if env.Status == EnvelopeStatusRefusedCapExceeded {
		env.Outcome = EnvelopeOutcomeRefused
	}
	return env, nil
}

// requestDiffers names the first parameter of a bulk request that differs
// from the one that created the envelope, or returns "" for the same request.
// An envelope recorded before migration 007 has no schedule to compare.
func (e *envelopeRecord) requestDiffers(req *envelopeRequest) string {
	switch {
	case e.TemplateID != req.templateID:
		return "template"
	case e.RenderedBody != req.body:
		return "body"
	case !e.sameRecipients(req.recipients):
		return "recipients"
	case e.RequestedBy != req.actor:
		return "actor"
	case e.scheduleIn != nil && *e.scheduleIn != req.scheduleIn.Truncate(time.Microsecond):
		// PostgreSQL's interval keeps microseconds.
		return "schedule"
	case !sameStoredTime(e.scheduledAt, req.scheduledAt):
		return "schedule"
	case !sameStoredInt(e.priority, req.priority):
		return "priority"
	case !sameStoredInt(e.maxAttempts, req.maxAttempts):
		return "max attempts"
	case !bytes.Equal(e.dataDigest, req.dataDigest):
		return "data"
	}
	if id, differs := e.recipientDiffers(req); differs {
		return fmt.Sprintf("body, data or time for conversation %d", id)
	}
	return ""
}

// recipientDiffers returns the first recipient, in the request's order,
// whose own body, data or time differs from the envelope's. A refused
// envelope keeps none, and is compared by its recipients alone.
func (e *envelopeRecord) recipientDiffers(req *envelopeRequest) (int64, bool) {
	if e.Status == EnvelopeStatusRefusedCapExceeded || (e.recipientDigests == nil && req.recipientDigests == nil) {
		return 0, false
	}
	none := recipientDigest("", nil, time.Time{})
	stored := make(map[int64][]byte, len(e.RecipientConversationIDs))
	for i, id := range e.RecipientConversationIDs {
		stored[id] = none
		if e.recipientDigests != nil {
			stored[id] = e.recipientDigests[i]
		}
	}
	for i, id := range req.recipients {
		asked := none
		if req.recipientDigests != nil {
			asked = req.recipientDigests[i]
		}
		if !bytes.Equal(stored[id], asked) {
			return id, true
		}
	}
	return 0, false
}

// sameStoredTime reports whether a time stored by dbutil.NullIfZeroTime is t, to
// the microsecond that timestamptz keeps.
func sameStoredTime(stored *time.Time, t time.Time) bool {
	if stored == nil {
		return t.IsZero()
	}
	return stored.Equal(t.Truncate(time.Microsecond))
}

// sameStoredInt reports whether a number stored by dbutil.NullIfZero is n.
func sameStoredInt(stored *int, n int) bool {
	if stored == nil {
		return n == 0
	}
	return *stored == n
}

// recipientsDigest is the SHA-256 of the ids in order, each as 8 big-endian
// bytes: the sha256 PostgreSQL computes over the concatenated int8send(id) of
// each, so that migration 004 could fill it in for older refusals.
func recipientsDigest(ids []int64) [sha256.Size]byte {
	h := sha256.New()
	var buf [4096]byte
	for len(ids) > 0 {
		n := min(len(ids), len(buf)/8)
		for i, id := range ids[:n] {
			binary.BigEndian.PutUint64(buf[i*8:], uint64(id))
		}
		h.Write(buf[:n*8])
		ids = ids[n:]
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// sameRecipients reports whether the envelope was made for these recipients:
// the same set for a submitted envelope, which keeps its whole list, and the
// same list in the same order for a refused one, which keeps a digest.
func (e *envelopeRecord) sameRecipients(ids []int64) bool {
	if e.recipientsDigest != nil {
		digest := recipientsDigest(ids)
		return e.Count == len(ids) && bytes.Equal(e.recipientsDigest, digest[:])
	}
	return sameConversations(e.RecipientConversationIDs, ids)
}

// sameConversations reports whether a and b hold the same conversation ids,
// in any order; neither holds repeats.
func sameConversations(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	sa, sb := slices.Clone(a), slices.Clone(b)
	slices.Sort(sa)
	slices.Sort(sb)
	return slices.Equal(sa, sb)
}

// lockEnvelope reads and locks an envelope row, or returns ErrNotFound.
func (c *Client) lockEnvelope(ctx context.Context, tx pgx.Tx, id uuid.UUID) (*Envelope, error) {
	env, err := scanEnvelope(tx.QueryRow(ctx, c.queries.LockEnvelope, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: envelope %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("outbound: lock envelope: %w", err)
	}
	return env, nil
}

// EnvelopeListCursor is a position in ListEnvelopes' order: the page after
// it starts with the next older envelope. Its zero value is not valid; get
// one from ListEnvelopesResult.NextCursor or EnvelopeListCursorFromEnvelope.
// It marshals to an opaque, URL-safe text, for a page link.
type EnvelopeListCursor struct {
	requestedAt time.Time
	id          uuid.UUID
}

// EnvelopeListCursorFromEnvelope returns the cursor positioned at env: a
// list after it starts with the envelope just older than env.
func EnvelopeListCursorFromEnvelope(env *Envelope) *EnvelopeListCursor {
	return &EnvelopeListCursor{requestedAt: env.RequestedAt, id: env.ID}
}

// MarshalText implements encoding.TextMarshaler.
func (c EnvelopeListCursor) MarshalText() ([]byte, error) {
	payload := make([]byte, 8, 8+len(c.id))
	// PostgreSQL keeps microseconds; so does the cursor.
	binary.BigEndian.PutUint64(payload, uint64(c.requestedAt.UnixMicro()))
	return encodeCursor(cursorKindEnvelope, append(payload, c.id[:]...)), nil
}

// UnmarshalText implements encoding.TextUnmarshaler. Text that is not an
// envelope cursor is ErrInvalidArgument.
func (c *EnvelopeListCursor) UnmarshalText(text []byte) error {
	payload, err := decodeCursor(text, cursorKindEnvelope, 8+len(uuid.UUID{}), "envelope list cursor")
	if err != nil {
		return err
	}
	c.requestedAt = time.UnixMicro(int64(binary.BigEndian.Uint64(payload))).UTC()
	copy(c.id[:], payload[8:])
	return nil
}

// replayEnvelope answers a call whose envelope id already exists. The same
// request replays the stored outcome: the submitted envelope with its message
// for each recipient, in the request's order, or the stored refusal. Any
// other request is ErrIdempotencyConflict.
func (c *Client) replayEnvelope(ctx context.Context, tx pgx.Tx, req *envelopeRequest) (*Envelope, []*Message, error) {
	envelopeID, conversationIDs := req.id, req.recipients
	rec, err := scanEnvelopeRecordWithOutcome(tx.QueryRow(ctx, c.queries.SelectEnvelope, envelopeID))
	if err != nil {
		return nil, nil, fmt.Errorf("outbound: read envelope %s: %w", envelopeID, err)
	}
	env := rec.Envelope
	if differs := rec.requestDiffers(req); differs != "" {
		return nil, nil, fmt.Errorf("%w: envelope %s was created with a different %s", ErrIdempotencyConflict, envelopeID, differs)
	}
	if env.Status == EnvelopeStatusRefusedCapExceeded {
		return nil, nil, &BatchTooLargeError{Count: env.Count, Cap: env.EffectiveCap, EnvelopeID: env.ID, Replayed: true}
	}

	rows, err := tx.Query(ctx, c.queries.SelectMessagesByEnvelope, envelopeID, env.TemplateID)
	if err != nil {
		return nil, nil, fmt.Errorf("outbound: read envelope messages: %w", err)
	}
	stored, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Message, error) { return dbutil.ScanMessage(row) })
	if err != nil {
		return nil, nil, fmt.Errorf("outbound: read envelope messages: %w", err)
	}
	// Oldest first, so a later live message replaces an earlier cancelled one.
	byConversation := make(map[int64]*Message, len(stored))
	for _, m := range stored {
		if prev, ok := byConversation[m.ConversationID]; !ok || !holdsDedupKey(prev.Status) || holdsDedupKey(m.Status) {
			byConversation[m.ConversationID] = m
		}
	}
	messages := make([]*Message, len(conversationIDs))
	for i, id := range conversationIDs {
		m, ok := byConversation[id]
		if !ok {
			return nil, nil, fmt.Errorf("outbound: envelope %s has no message for conversation %d", envelopeID, id)
		}
		messages[i] = m
	}
	return env, messages, nil
}
