package outbound

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnloop/outbound/internal/sqltext"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"go.opentelemetry.io/otel/trace"
)

// RoleSystemOutbound is the role of every message the library writes.
const RoleSystemOutbound = "system_outbound"

// Message is one outbound message row.
type Message struct {
	ID             uuid.UUID
	ConversationID int64
	// Role is always RoleSystemOutbound.
	Role       string
	TemplateID string
	Content    string
	Status     MessageStatus
	// BulkEnvelopeID is uuid.Nil for a message triggered without one.
	BulkEnvelopeID uuid.UUID
	// Metadata keeps the keys "template_id", "status" and "bulk_envelope_id"
	// for consumers ported from the original library.
	Metadata    map[string]any
	JobID       int64
	ScheduledAt time.Time
	Attempts    int
	LastError   string
	// SentAt is zero until the message is sent.
	SentAt time.Time
	// RateLimitedUntil is when a pending or failed message held back by its
	// rate limit (Config.RateLimits), or by a Notifier's RateLimited, is
	// booked to be tried again; zero when it is not waiting for one.
	RateLimitedUntil time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// Client triggers outbound messages. It is safe for concurrent use.
type Client struct {
	pool         *pgxpool.Pool
	config       *Config
	queries      *sqltext.Queries
	river        *river.Client[pgx.Tx]
	telemetry    *telemetry
	maxBatchSize atomic.Int64
	schema       schemaState
	statusGauge  *statusGauge
	// subscriptions are the subscribers to final outcomes (Subscribe).
	subscriptions subscriptions
	// rateLimitRows are the rate limit keys whose rows this process has
	// created or found.
	rateLimitRows sync.Map
}

// New returns a Client writing to the tables that Migrate created in
// config.Schema and enqueuing River jobs in config.RiverSchema. A nil config
// means defaults. Errors match ErrInvalidArgument and name the bad field.
//
// New registers the outbound.messages gauge's callback with
// Config.MeterProvider, which keeps it for the provider's life: make one
// Client per pool and keep it, as with River's client, rather than one per
// request.
func New(pool *pgxpool.Pool, config *Config) (*Client, error) {
	if pool == nil {
		return nil, invalidArgument("pool", "must not be nil")
	}
	cfg := config.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Client{
		pool:      pool,
		config:    cfg,
		queries:   sqltext.New(cfg.Schema, cfg.RiverSchema),
		telemetry: newTelemetry(cfg.TracerProvider, cfg.MeterProvider),
	}
	// One River client both enqueues delivery jobs in callers' transactions
	// and, once Start is called, works them. Until then it only inserts.
	workers := river.NewWorkers()
	c.AddWorkers(workers)
	riverClient, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema:            cfg.RiverSchema,
		Logger:            cfg.Logger,
		Queues:            map[string]river.QueueConfig{cfg.Queue: {MaxWorkers: cfg.MaxWorkers}},
		Workers:           workers,
		PeriodicJobs:      c.PeriodicJobs(),
		FetchCooldown:     cfg.FetchCooldown,
		FetchPollInterval: cfg.FetchPollInterval,
		PollOnly:          cfg.PollOnly,
		// River rescues a job still running after this long and runs it
		// again; validate keeps that clear of the claim's length, and River
		// wants it no shorter than JobTimeout, which the delivery worker
		// overrides anyway.
		RescueStuckJobsAfter: cfg.RescueStuckJobsAfter,
		JobTimeout:           claimLength(cfg),
	})
	if err != nil {
		return nil, fmt.Errorf("outbound: river client: %w", err)
	}
	c.river = riverClient
	c.subscriptions.logger = cfg.Logger
	c.subscriptions.dropped = c.telemetry.recordDroppedEvent
	c.statusGauge = c.telemetry.observeStatuses(c.countAwaitingByStatus)
	c.maxBatchSize.Store(int64(cfg.MaxBatchSize))
	return c, nil
}

// MaxBatchSize returns the BulkTrigger cap in force.
func (c *Client) MaxBatchSize() int { return int(c.maxBatchSize.Load()) }

// SetMaxBatchSize changes the BulkTrigger cap without a restart; calls that
// start afterwards see the new cap. n must be at least 1.
func (c *Client) SetMaxBatchSize(n int) error {
	if n < 1 {
		return invalidArgument("max batch size", "must be at least 1, got %d", n)
	}
	c.maxBatchSize.Store(int64(n))
	return nil
}

// TriggerOpts are the options of Trigger and TriggerTx.
type TriggerOpts struct {
	// TemplateID names the template the message uses. Required, not only
	// whitespace, at most MaxTemplateIDBytes (256) bytes.
	TemplateID string

	// Content is the message body, not only whitespace, at most
	// Config.MaxContentBytes (128 KiB by default). Defaults to "Outbound
	// message using template: <TemplateID>".
	Content string

	// ScheduleIn delays delivery: the message is not delivered before
	// now+ScheduleIn. Negative is an error. Defaults to 0: deliver now.
	ScheduleIn time.Duration

	// ScheduledAt is when delivery may start, as an absolute time ("at 9:00
	// tomorrow"); a time already past means now. Setting both it and
	// ScheduleIn is ErrInvalidArgument. The zero time means now.
	ScheduledAt time.Time

	// Priority is the River priority of the delivery job, from 1, the
	// highest, to 4. Defaults to DefaultTriggerPriority (1), which puts a
	// one-to-one follow-up ahead of bulk recipients (by default
	// DefaultBulkTriggerPriority, 2) queued before it.
	Priority int

	// MaxAttempts is the number of delivery attempts before the message is
	// discarded, at most 32,767. Defaults to Config.MaxAttempts.
	MaxAttempts int

	// Actor is who asked, at most MaxActorBytes (256) bytes. It goes to the
	// auditor, never to telemetry.
	Actor string

	// Auditor overrides Config.Auditor for this call.
	Auditor Auditor

	// BulkEnvelopeID is a correlation key, part of the dedup key. uuid.Nil
	// means none. Any id is accepted: it need not name an envelope.
	BulkEnvelopeID uuid.UUID
}

// delivery returns the options about delivery.
func (o *TriggerOpts) delivery() deliveryOpts {
	return deliveryOpts{scheduleIn: o.ScheduleIn, scheduledAt: o.ScheduledAt, priority: o.Priority, maxAttempts: o.MaxAttempts}
}

// TriggerResult is the result of Trigger and TriggerTx.
type TriggerResult struct {
	// Message is the row written, or the existing one when Duplicate.
	Message *Message
	// Duplicate is true when a message already held the dedup key
	// (conversation, template, envelope): one pending, delivering or failed
	// (its delivery has not ended), or one sent, or left unconfirmed, less
	// than Config.DedupWindow ago. Nothing new was written: Message is that
	// message, with its own content, not this call's. Cancelled and
	// discarded messages, and sent ones past the window, hold no key.
	Duplicate bool
}

// Trigger writes a pending message for the conversation and its River
// delivery job in one transaction. When a message already holds the dedup key
// (conversation, template, envelope), it writes nothing and returns that
// message with Duplicate set; see TriggerResult.Duplicate.
func (c *Client) Trigger(ctx context.Context, conversationID int64, opts *TriggerOpts) (*TriggerResult, error) {
	return c.trigger(ctx, nil, conversationID, opts)
}

// TriggerTx is Trigger inside the caller's transaction: the message and its
// job become visible when the caller commits, and the caller's rollback
// removes both, along with anything the auditor wrote through tx. When
// TriggerTx returns an error, its own writes are already undone (it works
// under a savepoint), so the caller's transaction stays usable.
func (c *Client) TriggerTx(ctx context.Context, tx pgx.Tx, conversationID int64, opts *TriggerOpts) (*TriggerResult, error) {
	if tx == nil {
		return nil, invalidArgument("tx", "must not be nil")
	}
	return c.trigger(ctx, tx, conversationID, opts)
}

func (c *Client) trigger(ctx context.Context, callerTx pgx.Tx, conversationID int64, opts *TriggerOpts) (*TriggerResult, error) {
	start := time.Now()
	if opts == nil {
		opts = &TriggerOpts{}
	}
	ctx, span := c.telemetry.tracer.Start(ctx, spanTrigger, trace.WithAttributes(
		attrConversationID.Int64(conversationID),
		attrTemplateID.String(opts.TemplateID),
	))
	if opts.BulkEnvelopeID != uuid.Nil {
		span.SetAttributes(attrBulkEnvelopeID.String(opts.BulkEnvelopeID.String()))
	}
	res, err := c.stageTrigger(ctx, callerTx, conversationID, opts)
	c.telemetry.recordTrigger(ctx, span, classifyTrigger(res, err), err, start)
	return res, err
}

// stageTrigger validates a Trigger call, then writes its message, job and
// audit event in one transaction, or under a savepoint of the caller's.
func (c *Client) stageTrigger(ctx context.Context, callerTx pgx.Tx, conversationID int64, opts *TriggerOpts) (*TriggerResult, error) {
	if err := validateTrigger(conversationID, opts, c.config.MaxContentBytes); err != nil {
		return nil, err
	}
	content := opts.Content
	if content == "" {
		content = "Outbound message using template: " + opts.TemplateID
	}
	var res *TriggerResult
	err := c.inTx(ctx, callerTx, func(tx pgx.Tx) error {
		staged, err := c.buildTriggerTx(ctx, tx, []int64{conversationID}, &stageParams{
			templateID:     opts.TemplateID,
			content:        content,
			bulkEnvelopeID: opts.BulkEnvelopeID,
			jobs:           c.jobOptions(opts.delivery(), DefaultTriggerPriority),
		})
		if err != nil {
			return err
		}
		msg := staged.messages[0]
		if staged.duplicates > 0 {
			// Nothing was written, so there is nothing to audit.
			res = &TriggerResult{Message: msg, Duplicate: true}
			return nil
		}
		if err := c.auditor(opts.Auditor).Audit(ctx, tx, AuditEvent{
			Action:     AuditActionTrigger,
			Actor:      opts.Actor,
			Metadata:   map[string]any{"conversation_id": conversationID, "template_id": opts.TemplateID},
			OccurredAt: msg.CreatedAt,
		}); err != nil {
			return &auditorError{err}
		}
		res = &TriggerResult{Message: msg}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Message returns the message with the given id, or ErrNotFound.
func (c *Client) Message(ctx context.Context, id uuid.UUID) (*Message, error) {
	if err := c.checkSchema(ctx, c.pool); err != nil {
		return nil, err
	}
	msg, err := scanMessage(c.pool.QueryRow(ctx, c.queries.SelectMessage, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: message %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("outbound: read message: %w", err)
	}
	return msg, nil
}

func (c *Client) auditor(override Auditor) Auditor {
	if override != nil {
		return override
	}
	return c.config.Auditor
}

// inTx runs fn in a transaction of its own when callerTx is nil, or else under
// a savepoint of callerTx, so that an error undoes fn's writes either way.
func (c *Client) inTx(ctx context.Context, callerTx pgx.Tx, fn func(tx pgx.Tx) error) error {
	if callerTx == nil {
		return c.withTx(ctx, fn)
	}
	savepoint, err := callerTx.Begin(ctx)
	if err != nil {
		return fmt.Errorf("outbound: savepoint: %w", err)
	}
	if err := c.checkSchemaThen(ctx, savepoint, fn); err != nil {
		_ = savepoint.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := savepoint.Commit(ctx); err != nil {
		return fmt.Errorf("outbound: release savepoint: %w", err)
	}
	return nil
}

// withTx runs fn in a transaction of its own on the pool, committing when fn
// returns nil and rolling back otherwise.
func (c *Client) withTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := beginTx(ctx, c.pool)
	if err != nil {
		return fmt.Errorf("outbound: begin: %w", err)
	}
	// Rollback after a commit is a no-op; on any error path it undoes all.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := c.checkSchemaThen(ctx, tx, fn); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("outbound: commit: %w", err)
	}
	return nil
}

// checkSchemaThen runs fn in tx once the schema check has passed.
func (c *Client) checkSchemaThen(ctx context.Context, tx pgx.Tx, fn func(tx pgx.Tx) error) error {
	if err := c.checkSchema(ctx, tx); err != nil {
		return err
	}
	return fn(tx)
}

// pgUUID passes a uuid to pgx in PostgreSQL's binary format; a uuid.UUID
// goes through its driver.Valuer, as text parsed back.
func pgUUID(id uuid.UUID) pgtype.UUID {
	return pgtype.UUID{Bytes: id, Valid: true}
}

// scanMessage scans one row of sqltext.MessageColumns, followed by the
// columns extra scans into, if any.
func scanMessage(row pgx.Row, extra ...any) (*Message, error) {
	var (
		m         Message
		status    string
		envelope  *uuid.UUID
		jobID     *int64
		lastError *string
		sentAt    *time.Time
		// rateWaitUntil is NULL unless the message waits for its limit; a
		// pgtype value scans without an allocation.
		rateWaitUntil pgtype.Timestamptz
	)
	dest := append([]any{&m.ID, &m.ConversationID, &m.Role, &m.TemplateID, &m.Content, &status, &envelope,
		&m.Metadata, &jobID, &m.ScheduledAt, &m.Attempts, &lastError, &sentAt, &m.CreatedAt, &m.UpdatedAt, &rateWaitUntil}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	m.Status = MessageStatus(status)
	if envelope != nil {
		m.BulkEnvelopeID = *envelope
	}
	if jobID != nil {
		m.JobID = *jobID
	}
	if lastError != nil {
		m.LastError = *lastError
	}
	if sentAt != nil {
		m.SentAt = *sentAt
	}
	if rateWaitUntil.Valid && slices.Contains(undeliveredStatuses, m.Status) {
		m.RateLimitedUntil = rateWaitUntil.Time
	}
	return &m, nil
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// deref returns *p, or the zero value for nil.
func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

func nullIfZero(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}

func nullIfZeroTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func nullIfNilUUID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}
