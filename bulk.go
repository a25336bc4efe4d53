package outbound

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cairnloop/outbound/internal/telemetry"
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
	// the message of every recipient without a body of its own in
	// Recipients. Required unless every recipient has its own; not only
	// whitespace, at most Config.MaxContentBytes (128 KiB by default).
	RenderedBody string

	// Recipients gives recipients, by conversation id, their own rendered
	// body, host data or time: see BulkRecipient. Each key must be one of
	// the call's conversations; a recipient without an entry gets the
	// bulk's. Nil: every recipient gets the bulk's.
	Recipients map[int64]BulkRecipient

	// Data is host data every recipient's message carries, a JSON object
	// the Notifier receives as Message.Data (the channel, a tenant); a
	// recipient's own Data is laid over it. At most Config.MaxDataBytes as
	// JSON. Never in telemetry. It must read back as given, as
	// TriggerOpts.Data must.
	Data map[string]any

	// Actor is who asked, at most MaxActorBytes (256) bytes; recorded as the
	// envelope's requested_by and given to the auditor, never to telemetry.
	Actor string

	// Auditor overrides Config.Auditor for this call.
	Auditor Auditor

	// ScheduleIn delays delivery of every recipient's message: none is
	// delivered before now+ScheduleIn. Negative is an error.
	ScheduleIn time.Duration

	// ScheduledAt is when delivery of every recipient's message may start,
	// as an absolute time; a time already past means now, however long past.
	// A time in the year 10000 or later, or setting both it and ScheduleIn,
	// is ErrInvalidArgument. The zero time means now.
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
	// and the same request (template, body, recipients and each one's own
	// body, data and time, data, actor, ScheduleIn, ScheduledAt, Priority
	// and MaxAttempts) returns the stored result with Replayed set; the same
	// id with any of them different is ErrIdempotencyConflict, naming what
	// differs, and for a recipient's own parts, the first recipient. uuid.Nil
	// means a fresh UUIDv7.
	EnvelopeID uuid.UUID
}

// deliveryOptions returns the options about delivery.
func (o *BulkTriggerOpts) deliveryOptions() deliveryOpts {
	return deliveryOpts{scheduleIn: o.ScheduleIn, scheduledAt: clampLongPast(o.ScheduledAt), priority: o.Priority, maxAttempts: o.MaxAttempts}
}

// envelopeRequest is what the call asks of envelope id for these
// recipients, with the cap in force, as a submitted envelope, with its data
// encoded and the digests of each recipient's own parts.
func (o *BulkTriggerOpts) envelopeRequest(id uuid.UUID, conversationIDs []int64, batchCap int, data []byte, recipients *bulkRecipients) *envelopeRequest {
	req := &envelopeRequest{
		id:          id,
		templateID:  o.TemplateID,
		body:        o.RenderedBody,
		recipients:  conversationIDs,
		cap:         batchCap,
		actor:       o.Actor,
		status:      EnvelopeStatusSubmitted,
		scheduleIn:  o.ScheduleIn,
		scheduledAt: clampLongPast(o.ScheduledAt),
		priority:    o.Priority,
		maxAttempts: o.MaxAttempts,
		data:        data,
	}
	if data != nil {
		sum := sha256.Sum256(data)
		req.dataDigest = sum[:]
	}
	if recipients != nil {
		req.recipientDigests = recipients.digests
	}
	return req
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

// bulkTrigger is BulkTrigger and BulkTriggerTx: callerTx is nil for
// BulkTrigger.
func (c *Client) bulkTrigger(ctx context.Context, callerTx pgx.Tx, conversationIDs []int64, opts *BulkTriggerOpts) (*BulkTriggerResult, error) {
	start := time.Now()
	if opts == nil {
		opts = &BulkTriggerOpts{}
	}
	ctx, span := c.telemetry.Tracer().Start(ctx, telemetry.SpanBulkTrigger, trace.WithAttributes(
		telemetry.AttrTemplateID.String(opts.TemplateID),
		telemetry.AttrCount.Int(len(conversationIDs)),
	))
	res, duplicates, err := c.stageBulkTrigger(ctx, callerTx, conversationIDs, opts)
	tally := classifyBulk(len(conversationIDs), res, duplicates, err)
	if callerTx != nil {
		tally = tally.Staged()
	}
	c.telemetry.RecordBulk(ctx, span, len(conversationIDs), tally, err, start)
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
	data, err := encodeData("BulkTriggerOpts.Data", opts.Data, c.config.MaxDataBytes)
	if err != nil {
		return nil, 0, err
	}
	// A refused bulk writes no message: its recipients' own parts are
	// neither checked nor kept.
	var recipients *bulkRecipients
	if len(conversationIDs) <= batchCap {
		if recipients, err = prepareRecipients(conversationIDs, opts.Recipients,
			sharedParts{body: opts.RenderedBody, data: opts.Data, encodedData: data}, c.config.MaxContentBytes, c.config.MaxDataBytes); err != nil {
			return nil, 0, withFieldPrefix("BulkTriggerOpts.", err)
		}
	}
	envelopeID := opts.EnvelopeID
	if envelopeID == uuid.Nil {
		if envelopeID, err = uuid.NewV7(); err != nil {
			return nil, 0, fmt.Errorf("outbound: envelope id: %w", err)
		}
	}
	trace.SpanFromContext(ctx).SetAttributes(telemetry.AttrBulkEnvelopeID.String(envelopeID.String()))
	req := opts.envelopeRequest(envelopeID, conversationIDs, batchCap, data, recipients)

	if len(conversationIDs) > batchCap {
		res, err := c.refuseOverCap(ctx, req, opts.Auditor)
		return res, 0, err
	}

	var (
		res        *BulkTriggerResult
		duplicates int
	)
	err = c.inTx(ctx, callerTx, func(tx pgx.Tx) error {
		env, err := c.insertEnvelope(ctx, tx, req)
		if errors.Is(err, pgx.ErrNoRows) {
			// The id exists: a retry of the same request, or a conflict.
			env, messages, err := c.replayEnvelope(ctx, tx, req)
			if err != nil {
				return err
			}
			res = &BulkTriggerResult{Envelope: env, Messages: messages, Replayed: true}
			return nil
		}
		if err != nil {
			return fmt.Errorf("outbound: insert envelope: %w", err)
		}

		staged, err := c.buildTriggerTx(ctx, tx, conversationIDs, &stageParams{
			templateID:     opts.TemplateID,
			content:        opts.RenderedBody,
			rendered:       true,
			data:           data,
			each:           recipients.parts,
			bulkEnvelopeID: envelopeID,
			jobs:           opts.deliveryOptions().jobOptions(DefaultBulkTriggerPriority, c.config.MaxAttempts),
		})
		if err != nil {
			return err
		}
		if err := c.auditBulk(ctx, tx, AuditActionBulkTrigger, env, opts.Auditor); err != nil {
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

// refusalRecordTimeout bounds how long BulkTrigger spends recording a
// refusal for exceeding the cap, waiting for a pool connection included,
// whatever the caller's context. A refusal that cannot be recorded within it
// is logged, and the call still returns ErrBatchTooLarge at once: a caller
// whose own transaction holds the pool's last connection is refused, not
// left waiting.
const refusalRecordTimeout = 2 * time.Second

// RefusalRecordTimeout is how long BulkTrigger spends recording a refusal.
//
// Deprecated: it pins an internal bound that a caller cannot act on; it is
// no longer part of the API and will be removed.
const RefusalRecordTimeout = refusalRecordTimeout

// refuseOverCap records a refused envelope in a transaction of its own on the
// pool, so that the refusal is durable even when a caller's transaction rolls
// back, and returns the error for the caller. When the refusal cannot be
// recorded within refusalRecordTimeout it logs that and still refuses.
func (c *Client) refuseOverCap(ctx context.Context, submitted *envelopeRequest, auditor Auditor) (*BulkTriggerResult, error) {
	var res *BulkTriggerResult
	count := len(submitted.recipients)
	refusal := &BatchTooLargeError{Count: count, Cap: submitted.cap, EnvelopeID: submitted.id}
	req := *submitted
	req.status = EnvelopeStatusRefusedCapExceeded
	req.refusedReason = fmt.Sprintf("batch_size %d exceeds cap %d", count, submitted.cap)
	recordCtx, cancel := context.WithTimeout(ctx, refusalRecordTimeout)
	defer cancel()
	err := c.withTx(recordCtx, func(tx pgx.Tx) error {
		ctx := recordCtx
		env, err := c.insertEnvelope(ctx, tx, &req)
		if errors.Is(err, pgx.ErrNoRows) {
			// A replay of an earlier submitted envelope, or of this refusal.
			env, messages, err := c.replayEnvelope(ctx, tx, &req)
			if err != nil {
				return err
			}
			res = &BulkTriggerResult{Envelope: env, Messages: messages, Replayed: true}
			return nil
		}
		if err != nil {
			return fmt.Errorf("outbound: insert refused envelope: %w", err)
		}
		return c.auditBulk(ctx, tx, AuditActionBulkRefused, env, auditor)
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
		slog.Int("count", count),
		slog.Int("effective_cap", submitted.cap),
		slog.String("error", err.Error()),
	)
	refusal.EnvelopeID = uuid.Nil
	return nil, errors.Join(refusal, err)
}

// auditBulk gives the auditor the event of a bulk call that wrote env: its
// id, count and template, and for a refusal the cap in force.
func (c *Client) auditBulk(ctx context.Context, tx pgx.Tx, action string, env *Envelope, auditor Auditor) error {
	metadata := map[string]any{
		"bulk_envelope_id": env.ID.String(),
		"count":            env.Count,
		"template_id":      env.TemplateID,
	}
	if action == AuditActionBulkRefused {
		metadata["effective_cap"] = env.EffectiveCap
	}
	event := AuditEvent{Action: action, Actor: env.RequestedBy, Metadata: metadata, OccurredAt: env.RequestedAt}
	if err := c.auditor(auditor).Audit(ctx, tx, event); err != nil {
		return &auditorError{err}
	}
	return nil
}

// classifyBulk classifies a BulkTrigger call of count recipients by what it
// returned, and by how many of the recipients' dedup keys were already held.
// A refusal is not a failure: the refused envelope is its durable result,
// unless it could not be recorded (EnvelopeID is uuid.Nil).
func classifyBulk(count int, res *BulkTriggerResult, duplicates int, err error) telemetry.TriggerTally {
	var tooLarge *BatchTooLargeError
	switch {
	case errors.As(err, &tooLarge) && tooLarge.EnvelopeID == uuid.Nil:
		return telemetry.TriggerTally{Outcome: telemetry.OutcomeRefusedCapExceededAuditFailed, Reason: telemetry.ReasonBatchTooLarge}
	case errors.As(err, &tooLarge):
		return telemetry.TriggerTally{Outcome: telemetry.OutcomeRefusedCapExceeded, Reason: telemetry.ReasonBatchTooLarge}
	case err != nil:
		return telemetry.TriggerTally{Outcome: telemetry.OutcomeFailed, Reason: reasonOf(err)}
	case res.Replayed:
		// Nothing new was written: every recipient already had its message.
		return telemetry.TriggerTally{Outcome: telemetry.OutcomeReplayed, Duplicates: count}
	}
	return telemetry.TriggerTally{Outcome: telemetry.OutcomeSubmitted, Triggered: count - duplicates, Duplicates: duplicates}
}

// validateBulkTrigger checks a bulk request. The options are checked first.
// A list over the cap is refused whatever it holds, so only the positivity
// of its ids is checked, which allocates nothing; a list within the cap is
// also checked for repeats.
func validateBulkTrigger(conversationIDs []int64, opts *BulkTriggerOpts, maxContentBytes, batchCap int) error {
	if opts.TemplateID == "" {
		return invalidArgument("BulkTriggerOpts.TemplateID", "is required")
	}
	if opts.RenderedBody == "" && len(opts.Recipients) == 0 {
		return invalidArgument("BulkTriggerOpts.RenderedBody", "is required unless every recipient has a body of its own")
	}
	for _, f := range []struct {
		name, value string
		maxBytes    int
	}{
		{"BulkTriggerOpts.TemplateID", opts.TemplateID, MaxTemplateIDBytes},
		{"BulkTriggerOpts.RenderedBody", opts.RenderedBody, maxContentBytes},
	} {
		if err := validateBoundedText(f.name, f.value, f.maxBytes); err != nil {
			return err
		}
		if err := validateNotBlank(f.name, f.value); err != nil {
			return err
		}
	}
	if err := validateActor("BulkTriggerOpts.Actor", opts.Actor); err != nil {
		return err
	}
	if err := opts.deliveryOptions().validate("BulkTriggerOpts"); err != nil {
		return err
	}
	if len(conversationIDs) == 0 {
		return invalidArgument("conversationIDs", "must name at least one conversation")
	}
	for i, id := range conversationIDs {
		if id <= 0 {
			return invalidArgument("conversationIDs", "must hold positive conversation ids, got %d at index %d", id, i)
		}
	}
	if len(conversationIDs) > batchCap {
		return nil
	}
	firstAt := make(map[int64]int, len(conversationIDs))
	for i, id := range conversationIDs {
		if j, seen := firstAt[id]; seen {
			return invalidArgument("conversationIDs", "must not repeat a conversation: %d is at index %d and %d", id, j, i)
		}
		firstAt[id] = i
	}
	return nil
}
