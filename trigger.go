package outbound

import (
	"context"
	"time"

	"github.com/cairnloop/outbound/internal/sqltext"
	"github.com/cairnloop/outbound/internal/telemetry"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/trace"
)

// TriggerOpts are the options of Trigger and TriggerTx.
type TriggerOpts struct {
	// TemplateID names the template the message uses. Required, not only
	// whitespace, at most MaxTemplateIDBytes (256) bytes.
	TemplateID string

	// Content is the body the caller rendered, not only whitespace, at most
	// Config.MaxContentBytes (128 KiB by default). Without it the message
	// is a template reference: its Content is the original library's
	// "Outbound message using template: <TemplateID>", kept for its
	// consumers, and Message.Rendered is false, telling the Notifier to
	// render by TemplateID.
	Content string

	// Data is host data the message carries, a JSON object the Notifier
	// receives as Message.Data: the recipient's address, the channel, a
	// locale, a tenant. At most Config.MaxDataBytes (8 KiB by default) as
	// JSON. It is kept on the row, shown on the dashboard's message page,
	// and never in telemetry. It must read back as given (see
	// Message.Data): a number float64 cannot hold exactly (an integer above
	// 2^53 that float64 would change, json.Number("1e400"), a big.Int of 400
	// digits), nesting deeper than MaxDataDepth, or invalid UTF-8 in a key
	// or string is ErrInvalidArgument naming where; send such a number as a
	// string.
	Data map[string]any

	// ScheduleIn delays delivery: the message is not delivered before
	// now+ScheduleIn. Negative is an error. Defaults to 0: deliver now.
	ScheduleIn time.Duration

	// ScheduledAt is when delivery may start, as an absolute time ("at 9:00
	// tomorrow"); a time already past means now, however long past. A time
	// in the year 10000 or later, or setting both it and ScheduleIn, is
	// ErrInvalidArgument. The zero time means now.
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

// deliveryOptions returns the options about delivery.
func (o *TriggerOpts) deliveryOptions() deliveryOpts {
	return deliveryOpts{scheduleIn: o.ScheduleIn, scheduledAt: clampLongPast(o.ScheduledAt), priority: o.Priority, maxAttempts: o.MaxAttempts}
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

// trigger is Trigger and TriggerTx: callerTx is nil for Trigger.
func (c *Client) trigger(ctx context.Context, callerTx pgx.Tx, conversationID int64, opts *TriggerOpts) (*TriggerResult, error) {
	start := time.Now()
	if opts == nil {
		opts = &TriggerOpts{}
	}
	ctx, span := c.telemetry.Tracer().Start(ctx, telemetry.SpanTrigger, trace.WithAttributes(
		telemetry.AttrConversationID.Int64(conversationID),
		telemetry.AttrTemplateID.String(opts.TemplateID),
	))
	if opts.BulkEnvelopeID != uuid.Nil {
		span.SetAttributes(telemetry.AttrBulkEnvelopeID.String(opts.BulkEnvelopeID.String()))
	}
	res, err := c.stageTrigger(ctx, callerTx, conversationID, opts)
	tally := classifyTrigger(res, err)
	if callerTx != nil {
		tally = tally.Staged()
	}
	c.telemetry.RecordTrigger(ctx, span, tally, err, start)
	return res, err
}

// stageTrigger validates a Trigger call, then writes its message, job and
// audit event in one transaction, or under a savepoint of the caller's.
func (c *Client) stageTrigger(ctx context.Context, callerTx pgx.Tx, conversationID int64, opts *TriggerOpts) (*TriggerResult, error) {
	if err := validateTrigger(conversationID, opts, c.config.MaxContentBytes); err != nil {
		return nil, err
	}
	data, err := encodeData("TriggerOpts.Data", opts.Data, c.config.MaxDataBytes)
	if err != nil {
		return nil, err
	}
	content := opts.Content
	if content == "" {
		content = sqltext.TemplateReferencePrefix + opts.TemplateID
	}
	var res *TriggerResult
	err = c.inTx(ctx, callerTx, func(tx pgx.Tx) error {
		staged, err := c.buildTriggerTx(ctx, tx, []int64{conversationID}, &stageParams{
			templateID:     opts.TemplateID,
			content:        content,
			rendered:       opts.Content != "",
			data:           data,
			bulkEnvelopeID: opts.BulkEnvelopeID,
			jobs:           opts.deliveryOptions().jobOptions(DefaultTriggerPriority, c.config.MaxAttempts),
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

// classifyTrigger classifies a Trigger call by what it returned.
func classifyTrigger(res *TriggerResult, err error) telemetry.TriggerTally {
	switch {
	case err != nil:
		return telemetry.TriggerTally{Outcome: telemetry.OutcomeFailed, Reason: reasonOf(err)}
	case res.Duplicate:
		return telemetry.TriggerTally{Outcome: telemetry.OutcomeDuplicate, Duplicates: 1}
	}
	return telemetry.TriggerTally{Outcome: telemetry.OutcomeTriggered, Triggered: 1}
}

func validateTrigger(conversationID int64, opts *TriggerOpts, maxContentBytes int) error {
	if err := validateConversationID("conversationID", conversationID); err != nil {
		return err
	}
	if opts.TemplateID == "" {
		return invalidArgument("TriggerOpts.TemplateID", "is required")
	}
	for _, f := range []struct {
		name, value string
		maxBytes    int
	}{
		{"TriggerOpts.TemplateID", opts.TemplateID, MaxTemplateIDBytes},
		{"TriggerOpts.Content", opts.Content, maxContentBytes},
	} {
		if err := validateBoundedText(f.name, f.value, f.maxBytes); err != nil {
			return err
		}
		if err := validateNotBlank(f.name, f.value); err != nil {
			return err
		}
	}
	if err := validateActor("TriggerOpts.Actor", opts.Actor); err != nil {
		return err
	}
	return opts.deliveryOptions().validate("TriggerOpts")
}
