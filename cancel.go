package outbound

import (
	"context"
	"errors"
	"fmt"

	"github.com/cairnloop/outbound/internal/dbutil"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// CancelOpts are the options of a cancel. A nil *CancelOpts means none.
type CancelOpts struct {
	// Actor is who cancelled, at most MaxActorBytes (256) bytes. It is kept
	// on the rows the cancel ends (Message.CancelledBy, and
	// Envelope.CancelledBy) and goes to the Auditor; never to telemetry.
	Actor string
}

// validate checks the options; nil is valid.
func (o *CancelOpts) validate() error {
	if o == nil {
		return nil
	}
	return validateActor("CancelOpts.Actor", o.Actor)
}

// actor is the options' Actor, "" for nil options.
func (o *CancelOpts) actor() string {
	if o == nil {
		return ""
	}
	return o.Actor
}

// CancelMessage cancels an undelivered (pending or failed) message and its
// River job in one transaction. Once it returns nil, the Notifier is never
// called for the message, and its dedup key is free again. Cancelling a
// cancelled message does nothing and returns nil. It never waits for a
// Notifier: a message in flight (delivering) gives ErrNotCancellable at once,
// saying a delivery is in progress, as do sent, unconfirmed and discarded
// messages; an unknown id gives ErrNotFound. When the message is the last
// uncancelled one of its envelope, the envelope's status becomes cancelled.
// The message keeps opts.Actor as CancelledBy, and the Auditor receives an
// AuditActionCancel event in the cancel's transaction; an Auditor's error
// undoes the cancel.
//
// Cancels lock the envelope row before message rows, always in that order,
// so that they cannot deadlock; a delivery locks its message row only for the
// statements that claim it and record the result.
func (c *Client) CancelMessage(ctx context.Context, id uuid.UUID, opts *CancelOpts) error {
	return c.cancelMessage(ctx, nil, id, opts)
}

// CancelMessageTx is CancelMessage inside the caller's transaction, as
// River's JobCancelTx is: the cancel takes effect when the caller commits,
// and the caller's rollback undoes it. Until then, the message's row and its
// envelope's stay locked, and a delivery attempt that comes for the message
// waits for them. When CancelMessageTx returns an error, its own writes are
// already undone (it works under a savepoint), so the caller's transaction
// stays usable.
func (c *Client) CancelMessageTx(ctx context.Context, tx pgx.Tx, id uuid.UUID, opts *CancelOpts) error {
	if tx == nil {
		return invalidArgument("tx", "must not be nil")
	}
	return c.cancelMessage(ctx, tx, id, opts)
}

// cancelMessage is CancelMessage and CancelMessageTx: callerTx is nil for
// CancelMessage.
func (c *Client) cancelMessage(ctx context.Context, callerTx pgx.Tx, id uuid.UUID, opts *CancelOpts) error {
	if err := opts.validate(); err != nil {
		return err
	}
	actor := dbutil.NullIfEmpty(opts.actor())
	var cancelled []*Message
	err := c.inTx(ctx, callerTx, func(tx pgx.Tx) error {
		var envelopeID *uuid.UUID
		err := tx.QueryRow(ctx, c.queries.SelectMessageEnvelopeID, id).Scan(&envelopeID)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: message %s", ErrNotFound, id)
		}
		if err != nil {
			return fmt.Errorf("outbound: cancel message: %w", err)
		}
		if envelopeID != nil {
			// The message's envelope id may be only a campaign key with no
			// envelope row; then there is nothing to lock or update.
			if _, err := c.lockEnvelope(ctx, tx, *envelopeID); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
		}

		msg, err := dbutil.ScanMessage(tx.QueryRow(ctx, c.queries.LockMessage, id))
		if err != nil {
			return fmt.Errorf("outbound: cancel message: lock: %w", err)
		}
		switch msg.Status {
		case MessageStatusCancelled:
			return nil
		case MessageStatusDelivering:
			return fmt.Errorf("%w: message %s: a delivery is in progress; it ends sent, or failed and then cancellable", ErrNotCancellable, id)
		case MessageStatusSent, MessageStatusUnconfirmed, MessageStatusDiscarded:
			return fmt.Errorf("%w: message %s is %s; only pending or failed messages can be cancelled", ErrNotCancellable, id, msg.Status)
		}

		if cancelled, err = c.cancelMessagesAndJobs(ctx, tx, c.queries.CancelMessage, id, actor); err != nil {
			return err
		}
		if envelopeID != nil {
			if _, err := tx.Exec(ctx, c.queries.MarkEnvelopeCancelledIfAllCancelled, *envelopeID, actor); err != nil {
				return fmt.Errorf("outbound: cancel message: update envelope: %w", err)
			}
		}
		if len(cancelled) == 0 {
			return nil
		}
		metadata := map[string]any{"message_id": id.String(), "conversation_id": msg.ConversationID, "template_id": msg.TemplateID}
		if msg.BulkEnvelopeID != uuid.Nil {
			metadata["bulk_envelope_id"] = msg.BulkEnvelopeID.String()
		}
		return c.auditCancel(ctx, tx, opts.actor(), metadata)
	})
	if err != nil {
		return err
	}
	c.publishCancelled(ctx, callerTx, cancelled, EventReasonCancelMessage)
	return nil
}

// CancelEnvelope cancels every undelivered (pending or failed) message of a
// submitted envelope and their River jobs in one transaction, and returns how
// many it cancelled. It never waits for a Notifier. A message in flight
// (delivering) is not counted: if its attempt succeeds it ends sent, and if
// the attempt fails it ends cancelled instead of being retried. Once it
// returns nil, no attempt starts for any of the envelope's messages: the
// Notifier is called again only by an attempt already in flight. Messages
// already sent, unconfirmed or discarded are left as they are. When no
// message is left uncancelled, the envelope's status becomes cancelled. An
// unknown id is ErrNotFound; a refused envelope, which has no messages, is
// ErrNotCancellable. The envelope keeps opts.Actor as CancelledBy unless an
// earlier cancel set it; each message cancelled, or in flight and asked to
// be, keeps it too. The Auditor receives an AuditActionCancel event in the
// cancel's transaction; an Auditor's error undoes the cancel.
func (c *Client) CancelEnvelope(ctx context.Context, id uuid.UUID, opts *CancelOpts) (int, error) {
	return c.cancelEnvelope(ctx, nil, id, opts)
}

// CancelEnvelopeTx is CancelEnvelope inside the caller's transaction: the
// cancels take effect when the caller commits, and the caller's rollback
// undoes them. Until then, the envelope's row and its undelivered messages'
// rows stay locked, and delivery attempts that come for them wait. When
// CancelEnvelopeTx returns an error, its own writes are already undone (it
// works under a savepoint), so the caller's transaction stays usable.
func (c *Client) CancelEnvelopeTx(ctx context.Context, tx pgx.Tx, id uuid.UUID, opts *CancelOpts) (int, error) {
	if tx == nil {
		return 0, invalidArgument("tx", "must not be nil")
	}
	return c.cancelEnvelope(ctx, tx, id, opts)
}

// cancelEnvelope is CancelEnvelope and CancelEnvelopeTx: callerTx is nil
// for CancelEnvelope.
func (c *Client) cancelEnvelope(ctx context.Context, callerTx pgx.Tx, id uuid.UUID, opts *CancelOpts) (int, error) {
	if err := opts.validate(); err != nil {
		return 0, err
	}
	actor := dbutil.NullIfEmpty(opts.actor())
	var cancelled []*Message
	err := c.inTx(ctx, callerTx, func(tx pgx.Tx) error {
		env, err := c.lockEnvelope(ctx, tx, id)
		if err != nil {
			return err
		}
		if env.Status == EnvelopeStatusRefusedCapExceeded {
			return fmt.Errorf("%w: envelope %s was refused (%s); it has no messages to cancel", ErrNotCancellable, id, env.RefusedReason)
		}
		if cancelled, err = c.cancelMessagesAndJobs(ctx, tx, c.queries.CancelEnvelopeMessages, id, env.TemplateID, actor); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, c.queries.MarkEnvelopeCancelRequested, id, actor); err != nil {
			return fmt.Errorf("outbound: cancel envelope: update envelope: %w", err)
		}
		return c.auditCancel(ctx, tx, opts.actor(), map[string]any{
			"bulk_envelope_id": id.String(), "template_id": env.TemplateID, "count": len(cancelled),
		})
	})
	if err != nil {
		return 0, err
	}
	c.publishCancelled(ctx, callerTx, cancelled, EventReasonCancelEnvelope)
	return len(cancelled), nil
}

// auditCancel gives the Auditor a cancel's event, inside its transaction. The
// event occurs at the transaction's time, which the rows' cancelled_at keep:
// the database's clock, not this process's.
func (c *Client) auditCancel(ctx context.Context, tx pgx.Tx, actor string, metadata map[string]any) error {
	if _, noop := c.config.Auditor.(NoopAuditor); noop {
		return nil
	}
	event := AuditEvent{Action: AuditActionCancel, Actor: actor, Metadata: metadata}
	if err := tx.QueryRow(ctx, c.queries.TransactionTime).Scan(&event.OccurredAt); err != nil {
		return fmt.Errorf("outbound: cancel: read the time: %w", err)
	}
	if err := c.config.Auditor.Audit(ctx, tx, event); err != nil {
		return &auditorError{err}
	}
	return nil
}

// publishCancelled publishes the events of messages cancelled, once they are
// committed: never for a call in the caller's transaction, whose commit the
// library cannot see.
func (c *Client) publishCancelled(ctx context.Context, callerTx pgx.Tx, cancelled []*Message, reason EventReason) {
	if callerTx != nil || !c.subscriptions.listening() {
		return
	}
	for _, msg := range cancelled {
		c.subscriptions.publish(ctx, messageEvent(msg, MessageStatusCancelled, reason, msg.LastError))
	}
}

// cancelMessagesAndJobs runs a message-cancelling query, then cancels the
// River jobs of the messages it cancelled. A job that is running is left to
// its worker, which will find the message cancelled before claiming it. It
// returns the cancelled messages, with only the columns the query returns
// filled in: their identity, attempts, last error and job id.
func (c *Client) cancelMessagesAndJobs(ctx context.Context, tx pgx.Tx, query string, args ...any) ([]*Message, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("outbound: cancel messages: %w", err)
	}
	cancelled, err := pgx.CollectRows(rows, scanSettled)
	if err != nil {
		return nil, fmt.Errorf("outbound: cancel messages: %w", err)
	}
	jobIDs := make([]int64, 0, len(cancelled))
	messageIDs := make([]string, 0, len(cancelled))
	for _, msg := range cancelled {
		if msg.JobID != 0 {
			jobIDs, messageIDs = append(jobIDs, msg.JobID), append(messageIDs, msg.ID.String())
		}
	}
	if len(jobIDs) > 0 {
		if err := cancelJobs(ctx, tx, c.queries, jobIDs, messageIDs); err != nil {
			return nil, fmt.Errorf("outbound: cancel delivery jobs: %w", err)
		}
	}
	return cancelled, nil
}

// scanSettled scans a cancelled message's row: sqltext's settled columns,
// then its job id.
func scanSettled(row pgx.CollectableRow) (*Message, error) {
	var (
		m         Message
		envelope  *uuid.UUID
		lastError *string
		jobID     *int64
	)
	if err := row.Scan(&m.ID, &m.ConversationID, &m.TemplateID, &envelope, &m.Attempts, &lastError, &jobID); err != nil {
		return nil, err
	}
	if envelope != nil {
		m.BulkEnvelopeID = *envelope
	}
	m.LastError, m.JobID = dbutil.Deref(lastError), dbutil.Deref(jobID)
	return &m, nil
}
