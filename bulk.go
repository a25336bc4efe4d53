package outbound

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/trace"
)

// BulkTriggerOpts are the options of BulkTrigger and BulkTriggerTx.
type BulkTriggerOpts struct {
	// TemplateID is the template that RenderedBody was rendered from.
	// Required, not only whitespace, at most MaxTemplateIDBytes (256)
	// bytes. It is recorded, never used to render again.
	TemplateID string

	// RenderedBody is the body to send, snapshotted on the envelope and on
	// every recipient's message. Required, not only whitespace, at most
	// Config.MaxContentBytes (128 KiB by default).
	RenderedBody string

	// Actor is who asked, at most MaxActorBytes (256) bytes; recorded as the
	// envelope's requested_by and given to the auditor, never to telemetry.
	Actor string

	// Auditor overrides Config.Auditor for this call.
	Auditor Auditor

	// ScheduleIn delays delivery of every recipient's message: none is
	// delivered before now+ScheduleIn. Negative is an error.
	ScheduleIn time.Duration

	// ScheduledAt is when delivery of every recipient's message may start,
	// as an absolute time; a time already past means now. Setting both it
	// and ScheduleIn is ErrInvalidArgument. The zero time means now.
	ScheduledAt time.Time

	// Priority is the River priority of every recipient's delivery job,
	// from 1, the highest, to 4. Defaults to DefaultBulkTriggerPriority (2):
	// below a Trigger's, so that a one-to-one follow-up is never delivered
	// behind a bulk.
	Priority int

	// MaxAttempts is the number of delivery attempts before a recipient's
	// message is discarded, at most 32,767. Defaults to Config.MaxAttempts.
	MaxAttempts int

	// EnvelopeID is an optional idempotency key. Retrying with the same id
	// and the same request (template, body, recipients, actor, ScheduleIn,
	// ScheduledAt, Priority and MaxAttempts) returns the stored result with
	// Replayed set; the same id with any of them different is
	// ErrIdempotencyConflict. uuid.Nil means a fresh UUIDv7.
	EnvelopeID uuid.UUID
}

// delivery returns the options about delivery.
func (o *BulkTriggerOpts) delivery() deliveryOpts {
	return deliveryOpts{scheduleIn: o.ScheduleIn, scheduledAt: o.ScheduledAt, priority: o.Priority, maxAttempts: o.MaxAttempts}
}

// BulkTriggerResult is the result of BulkTrigger and BulkTriggerTx.
type BulkTriggerResult struct {
	// Envelope is the submitted envelope.
	Envelope *Envelope
	// Messages has one message per recipient, in input order. A recipient
	// whose dedup key already had a live message gets that message.
	Messages []*Message
	// Replayed is true when EnvelopeID already existed with the same
	// request: nothing new was written.
	Replayed bool
}

// BulkTrigger writes one envelope, then one pending message and one River
// delivery job per conversation, all in one transaction: either everything is
// written or nothing is.
//
// With more conversations than MaxBatchSize it writes nothing for the
// recipients, records a refused envelope in a transaction of its own, and
// returns an error matching ErrBatchTooLarge (a *BatchTooLargeError).
func (c *Client) BulkTrigger(ctx context.Context, conversationIDs []int64, opts *BulkTriggerOpts) (*BulkTriggerResult, error) {
	return c.bulkTrigger(ctx, nil, conversationIDs, opts)
}

// BulkTriggerTx is BulkTrigger inside the caller's transaction: the envelope,
// messages and jobs become visible when the caller commits, and the caller's
// rollback removes them. A refusal for exceeding the cap is the exception: it
// is recorded on the pool in a transaction of its own, so it survives the
// caller's rollback. When BulkTriggerTx returns an error, its own writes in tx
// are already undone (it works under a savepoint).
func (c *Client) BulkTriggerTx(ctx context.Context, tx pgx.Tx, conversationIDs []int64, opts *BulkTriggerOpts) (*BulkTriggerResult, error) {
	if tx == nil {
		return nil, invalidArgument("tx", "must not be nil")
	}
	return c.bulkTrigger(ctx, tx, conversationIDs, opts)
}

func (c *Client) bulkTrigger(ctx context.Context, callerTx pgx.Tx, conversationIDs []int64, opts *BulkTriggerOpts) (*BulkTriggerResult, error) {
	start := time.Now()
	if opts == nil {
		opts = &BulkTriggerOpts{}
	}
	ctx, span := c.telemetry.tracer.Start(ctx, spanBulkTrigger, trace.WithAttributes(
		attrTemplateID.String(opts.TemplateID),
		attrCount.Int(len(conversationIDs)),
	))
	res, duplicates, err := c.stageBulkTrigger(ctx, callerTx, conversationIDs, opts)
	c.telemetry.recordBulk(ctx, span, len(conversationIDs), classifyBulk(len(conversationIDs), res, duplicates, err), err, start)
	return res, err
}

// stageBulkTrigger validates a BulkTrigger call, then writes its envelope,
// messages, jobs and audit event in one transaction, or under a savepoint of
// the caller's; or records its refusal; or replays the envelope it names. It
// returns how many recipients' dedup keys were already held.
func (c *Client) stageBulkTrigger(ctx context.Context, callerTx pgx.Tx, conversationIDs []int64, opts *BulkTriggerOpts) (*BulkTriggerResult, int, error) {
	// The cap is read once per call, before any transaction, so that
	// SetMaxBatchSize takes effect on the next call.
	batchCap := c.MaxBatchSize()
	if err := validateBulkTrigger(conversationIDs, opts, c.config.MaxContentBytes, batchCap); err != nil {
		return nil, 0, err
	}
	envelopeID := opts.EnvelopeID
	if envelopeID == uuid.Nil {
		var err error
		if envelopeID, err = uuid.NewV7(); err != nil {
			return nil, 0, fmt.Errorf("outbound: envelope id: %w", err)
		}
	}
	trace.SpanFromContext(ctx).SetAttributes(attrBulkEnvelopeID.String(envelopeID.String()))

	if len(conversationIDs) > batchCap {
		res, err := c.refuseOverCap(ctx, envelopeID, conversationIDs, opts, batchCap)
		return res, 0, err
	}

	var (
		res        *BulkTriggerResult
		duplicates int
	)
	err := c.inTx(ctx, callerTx, func(tx pgx.Tx) error {
		env, err := scanEnvelope(tx.QueryRow(ctx, c.queries.InsertEnvelope, envelopeID, opts.TemplateID, opts.RenderedBody,
			conversationIDs, len(conversationIDs), batchCap, nullIfEmpty(opts.Actor), EnvelopeStatusSubmitted, nil, nil,
			opts.ScheduleIn, nullIfZeroTime(opts.ScheduledAt), nullIfZero(opts.Priority), nullIfZero(opts.MaxAttempts)))
		if errors.Is(err, pgx.ErrNoRows) {
			// The id exists: a retry of the same request, or a conflict.
			res, err = c.replayEnvelope(ctx, tx, envelopeID, conversationIDs, opts)
			return err
		}
		if err != nil {
			return fmt.Errorf("outbound: insert envelope: %w", err)
		}

		staged, err := c.buildTriggerTx(ctx, tx, conversationIDs, &stageParams{
			templateID:     opts.TemplateID,
			content:        opts.RenderedBody,
			bulkEnvelopeID: envelopeID,
			jobs:           c.jobOptions(opts.delivery(), DefaultBulkTriggerPriority),
		})
		if err != nil {
			return err
		}
		if err := c.auditBulk(ctx, tx, AuditActionBulkTrigger, env, opts); err != nil {
			return err
		}
		res, duplicates = &BulkTriggerResult{Envelope: env, Messages: staged.messages}, staged.duplicates
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return res, duplicates, nil
}

// RefusalRecordTimeout bounds how long BulkTrigger spends recording a
// refusal for exceeding the cap, waiting for a pool connection included,
// whatever the caller's context. A refusal that cannot be recorded within it
// is logged, and the call still returns ErrBatchTooLarge at once: a caller
// whose own transaction holds the pool's last connection is refused, not
// left waiting.
const RefusalRecordTimeout = 2 * time.Second

// MaxRefusedRecipientsKept is the most recipient ids a refused envelope
// keeps: the first ones of the list. The envelope keeps the full count and a
// SHA-256 digest of the whole list, so that its row stays small (8 KiB of
// ids) however long the refused list was.
const MaxRefusedRecipientsKept = 1000

// refuseOverCap records a refused envelope in a transaction of its own on the
// pool, so that the refusal is durable even when a caller's transaction rolls
// back, and returns the error for the caller. When the refusal cannot be
// recorded within RefusalRecordTimeout it logs that and still refuses.
func (c *Client) refuseOverCap(ctx context.Context, envelopeID uuid.UUID, conversationIDs []int64, opts *BulkTriggerOpts, batchCap int) (*BulkTriggerResult, error) {
	var res *BulkTriggerResult
	refusal := &BatchTooLargeError{Count: len(conversationIDs), Cap: batchCap, EnvelopeID: envelopeID}
	recordCtx, cancel := context.WithTimeout(ctx, RefusalRecordTimeout)
	defer cancel()
	kept := conversationIDs[:min(len(conversationIDs), MaxRefusedRecipientsKept)]
	digest := recipientsDigest(conversationIDs)
	err := c.withTx(recordCtx, func(tx pgx.Tx) error {
		ctx := recordCtx
		reason := fmt.Sprintf("batch_size %d exceeds cap %d", len(conversationIDs), batchCap)
		env, err := scanEnvelope(tx.QueryRow(ctx, c.queries.InsertEnvelope, envelopeID, opts.TemplateID, opts.RenderedBody,
			kept, len(conversationIDs), batchCap, nullIfEmpty(opts.Actor), EnvelopeStatusRefusedCapExceeded, reason, digest[:],
			opts.ScheduleIn, nullIfZeroTime(opts.ScheduledAt), nullIfZero(opts.Priority), nullIfZero(opts.MaxAttempts)))
		if errors.Is(err, pgx.ErrNoRows) {
			var replayErr error
			res, replayErr = c.replayEnvelope(ctx, tx, envelopeID, conversationIDs, opts)
			return replayErr
		}
		if err != nil {
			return fmt.Errorf("outbound: insert refused envelope: %w", err)
		}
		return c.auditBulk(ctx, tx, AuditActionBulkRefused, env, opts)
	})
	switch {
	case err == nil && res != nil:
		return res, nil // a replay of an earlier submitted envelope
	case err == nil:
		return nil, refusal
	case errors.Is(err, ErrBatchTooLarge), errors.Is(err, ErrIdempotencyConflict):
		// A replay of an earlier refusal, or an id reused for another request.
		return nil, err
	}
	// The refusal must not be lost silently: log it (counts only, no actor or
	// body) and refuse all the same.
	c.config.Logger.ErrorContext(ctx, "outbound: could not record refused bulk envelope",
		slog.Int("count", len(conversationIDs)),
		slog.Int("effective_cap", batchCap),
		slog.String("error", err.Error()),
	)
	refusal.EnvelopeID = uuid.Nil
	return nil, errors.Join(refusal, err)
}

// auditBulk gives the auditor the event of a bulk call that wrote env: its
// id, count and template, and for a refusal the cap in force.
func (c *Client) auditBulk(ctx context.Context, tx pgx.Tx, action string, env *Envelope, opts *BulkTriggerOpts) error {
	metadata := map[string]any{
		"bulk_envelope_id": env.ID.String(),
		"count":            env.Count,
		"template_id":      env.TemplateID,
	}
	if action == AuditActionBulkRefused {
		metadata["effective_cap"] = env.EffectiveCap
	}
	event := AuditEvent{Action: action, Actor: opts.Actor, Metadata: metadata, OccurredAt: env.RequestedAt}
	if err := c.auditor(opts.Auditor).Audit(ctx, tx, event); err != nil {
		return &auditorError{err}
	}
	return nil
}

// replayEnvelope answers a call whose envelope id already exists. The same
// request replays the stored outcome: the submitted result with Replayed set,
// or the stored refusal. Any other request is ErrIdempotencyConflict.
func (c *Client) replayEnvelope(ctx context.Context, tx pgx.Tx, envelopeID uuid.UUID, conversationIDs []int64, opts *BulkTriggerOpts) (*BulkTriggerResult, error) {
	env, err := scanEnvelope(tx.QueryRow(ctx, c.queries.SelectEnvelope, envelopeID))
	if err != nil {
		return nil, fmt.Errorf("outbound: read envelope %s: %w", envelopeID, err)
	}
	if differs := env.requestDiffers(conversationIDs, opts); differs != "" {
		return nil, fmt.Errorf("%w: envelope %s was created with a different %s", ErrIdempotencyConflict, envelopeID, differs)
	}
	if env.Status == EnvelopeStatusRefusedCapExceeded {
		return nil, &BatchTooLargeError{Count: env.Count, Cap: env.EffectiveCap, EnvelopeID: env.ID}
	}

	rows, err := tx.Query(ctx, c.queries.SelectMessagesByEnvelope, envelopeID, env.TemplateID)
	if err != nil {
		return nil, fmt.Errorf("outbound: read envelope messages: %w", err)
	}
	stored, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Message, error) { return scanMessage(row) })
	if err != nil {
		return nil, fmt.Errorf("outbound: read envelope messages: %w", err)
	}
	// Oldest first, so a later live message replaces an earlier cancelled one.
	byConversation := make(map[int64]*Message, len(stored))
	for _, m := range stored {
		if prev, ok := byConversation[m.ConversationID]; !ok || !prev.Status.holdsDedupKey() || m.Status.holdsDedupKey() {
			byConversation[m.ConversationID] = m
		}
	}
	messages := make([]*Message, len(conversationIDs))
	for i, id := range conversationIDs {
		m, ok := byConversation[id]
		if !ok {
			return nil, fmt.Errorf("outbound: envelope %s has no message for conversation %d", envelopeID, id)
		}
		messages[i] = m
	}
	return &BulkTriggerResult{Envelope: env, Messages: messages, Replayed: true}, nil
}

// requestDiffers names the first parameter of a bulk request that differs
// from the one that created the envelope, or returns "" for the same request.
// An envelope recorded before migration 007 has no schedule to compare.
func (e *Envelope) requestDiffers(conversationIDs []int64, opts *BulkTriggerOpts) string {
	switch {
	case e.TemplateID != opts.TemplateID:
		return "template"
	case e.RenderedBody != opts.RenderedBody:
		return "body"
	case !e.sameRecipients(conversationIDs):
		return "recipients"
	case e.RequestedBy != opts.Actor:
		return "actor"
	case e.scheduleIn != nil && *e.scheduleIn != opts.ScheduleIn.Truncate(time.Microsecond):
		// PostgreSQL's interval keeps microseconds.
		return "schedule"
	case !sameStoredTime(e.scheduledAt, opts.ScheduledAt):
		return "schedule"
	case !sameStoredInt(e.priority, opts.Priority):
		return "priority"
	case !sameStoredInt(e.maxAttempts, opts.MaxAttempts):
		return "max attempts"
	}
	return ""
}

// sameStoredTime reports whether a time stored by nullIfZeroTime is t, to
// the microsecond that timestamptz keeps.
func sameStoredTime(stored *time.Time, t time.Time) bool {
	if stored == nil {
		return t.IsZero()
	}
	return stored.Equal(t.Truncate(time.Microsecond))
}

// sameStoredInt reports whether a number stored by nullIfZero is n.
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
func (e *Envelope) sameRecipients(ids []int64) bool {
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
