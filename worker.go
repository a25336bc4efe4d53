package outbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"go.opentelemetry.io/otel/trace"
)

// Notifier delivers outbound messages by email, SMS, chat or whatever the host
// chooses. The delivery worker calls it once per attempt.
type Notifier interface {
	// OnOutboundTriggered delivers one message. msg.ID is the same on every
	// attempt for a message: pass it to the provider as an idempotency key,
	// because an attempt whose result could not be recorded (a crash, a lost
	// connection) is made again. msg.Attempts counts this attempt.
	//
	// Returning nil marks the message sent. An error, a panic or running
	// past Config.NotifyTimeout marks the attempt failed; River retries it
	// with backoff, and when the last of Config.MaxAttempts fails the message
	// is discarded. ctx is cancelled at the timeout and when the worker is
	// stopped.
	OnOutboundTriggered(ctx context.Context, msg *Message) error
}

// NotifierFunc adapts a function to the Notifier interface.
type NotifierFunc func(ctx context.Context, msg *Message) error

// OnOutboundTriggered calls f(ctx, msg).
func (f NotifierFunc) OnOutboundTriggered(ctx context.Context, msg *Message) error {
	return f(ctx, msg)
}

// recordTimeout bounds the writes that record an attempt's result. They run on
// a context detached from the job's, so that what the notifier did is still
// recorded when the worker is being stopped.
const recordTimeout = 10 * time.Second

// deliveryWorker is the River worker of DeliveryArgs jobs.
type deliveryWorker struct {
	river.WorkerDefaults[DeliveryArgs]
	client *Client
}

// Work delivers one message.
func (w *deliveryWorker) Work(ctx context.Context, job *river.Job[DeliveryArgs]) error {
	return w.client.deliver(ctx, job)
}

// Timeout leaves River's own job timeout above the notifier's, so that an
// attempt cut off by NotifyTimeout still has time to record itself.
func (w *deliveryWorker) Timeout(*river.Job[DeliveryArgs]) time.Duration {
	return deliveryTimeout(w.client.config)
}

// deliveryTimeout is the longest one delivery attempt may run.
func deliveryTimeout(cfg *Config) time.Duration {
	return cfg.NotifyTimeout + 2*recordTimeout
}

// NextRetry applies Config.RetryPolicy; the zero time defers to the River
// client's policy.
func (w *deliveryWorker) NextRetry(job *river.Job[DeliveryArgs]) time.Time {
	if policy := w.client.config.RetryPolicy; policy != nil {
		return policy.NextRetry(job.JobRow)
	}
	return time.Time{}
}

// AddWorkers registers the library's workers (delivery and reconcile) with a
// host's own River workers, for a host that runs its own River client instead
// of calling Start. That client must use the riverpgxv5 driver, work
// Config.Queue, have its Schema set to Config.RiverSchema, and should list
// PeriodicJobs in its config. Its RescueStuckJobsAfter (an hour by default)
// should be at least Config.NotifyTimeout + 20s, as Config.RescueStuckJobsAfter
// must be: sooner, River starts a delivery still in progress a second time,
// which then only waits on the message row's lock for the first to finish.
// Like river.AddWorker, it panics if the workers are already registered.
func (c *Client) AddWorkers(workers *river.Workers) {
	river.AddWorker(workers, &deliveryWorker{client: c})
	river.AddWorker(workers, &reconcileWorker{client: c})
}

// Start starts the embedded River client, which works Config.Queue with up to
// Config.MaxWorkers deliveries at once. Several processes may run it against
// one database; River hands each job to one of them at a time. Cancelling ctx
// stops the client abruptly, as Stop does when its own context ends.
func (c *Client) Start(ctx context.Context) error {
	if err := c.river.Start(ctx); err != nil {
		return fmt.Errorf("outbound: start delivery worker: %w", err)
	}
	return nil
}

// Stop stops the embedded River client: it fetches no more deliveries and
// waits for running ones to finish. If ctx ends first, it cancels the running
// deliveries' contexts, waits for them to record a failed attempt (which River
// retries later), and returns ctx's error.
func (c *Client) Stop(ctx context.Context) error {
	err := c.river.Stop(ctx)
	if err == nil {
		return nil
	}
	if ctx.Err() == nil {
		return fmt.Errorf("outbound: stop delivery worker: %w", err)
	}
	cancelCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*recordTimeout)
	defer cancel()
	if stopErr := c.river.StopAndCancel(cancelCtx); stopErr != nil {
		return fmt.Errorf("outbound: stop delivery worker: %w", errors.Join(err, stopErr))
	}
	return fmt.Errorf("outbound: stop delivery worker: %w", err)
}

// deliver is one delivery attempt. The message row stays locked from the read
// to the commit that records the result, so a concurrent cancel waits for the
// attempt and then finds the message sent, or cancels it and the next attempt
// finds it cancelled: never both.
func (c *Client) deliver(ctx context.Context, job *river.Job[DeliveryArgs]) (err error) {
	args := job.Args
	ctx, span := c.telemetry.tracer.Start(ctx, spanDeliver, trace.WithAttributes(
		attrMessageID.String(args.MessageID.String()),
		attrConversationID.Int64(args.ConversationID),
		attrTemplateID.String(args.TemplateID),
		attrAttempt.Int(job.Attempt),
	))
	if args.BulkEnvelopeID != nil {
		span.SetAttributes(attrBulkEnvelopeID.String(args.BulkEnvelopeID.String()))
	}
	var (
		o = outcomeFailed
		r = reasonDatabaseError
	)
	defer func() {
		if r == reasonDatabaseError && ctx.Err() != nil {
			r = reasonWorkerStopped // stopped before the notifier was reached
		}
		span.SetAttributes(attrReason.String(string(r)))
		spanErr := err
		if o == outcomeNoOp || o == outcomeSent {
			spanErr = nil // a cancelled job is not a failure
		}
		endSpan(span, o, spanErr)
		c.telemetry.recordDelivery(ctx, o, r)
	}()

	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("outbound: deliver: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	msg, err := scanMessage(tx.QueryRow(ctx, c.queries.LockMessage, args.MessageID))
	if errors.Is(err, pgx.ErrNoRows) {
		// Someone deleted the row; retrying cannot bring it back.
		o, r = outcomeDiscarded, reasonMessageNotFound
		return river.JobCancel(fmt.Errorf("outbound: deliver: message %s not found", args.MessageID))
	}
	if err != nil {
		return fmt.Errorf("outbound: deliver: lock message: %w", err)
	}

	switch msg.Status {
	case MessageStatusCancelled:
		o, r = outcomeNoOp, reasonCancelled
		return river.JobCancel(fmt.Errorf("outbound: message %s was cancelled", msg.ID))
	case MessageStatusDiscarded:
		// A discarded job retried by hand (say, from River's UI): the message
		// is final and its dedup key may be taken again; trigger it afresh.
		o, r = outcomeNoOp, reasonAlreadyFinal
		return river.JobCancel(fmt.Errorf("outbound: message %s was discarded; trigger it again to resend", msg.ID))
	case MessageStatusSent:
		o, r = outcomeNoOp, reasonAlreadyFinal
		if err := c.recordSent(ctx, tx, job, msg.Attempts, false); err != nil {
			o, r = outcomeFailed, reasonDatabaseError
			return err
		}
		return nil
	}

	// River counts attempts that crashed before recording anything, too.
	msg.Attempts = max(msg.Attempts+1, job.Attempt)

	if c.config.Notifier == nil {
		if err := c.recordSent(ctx, tx, job, msg.Attempts, true); err != nil {
			return err
		}
		o, r = outcomeNoOp, reasonNoNotifierConfigured
		return nil
	}

	notifyReason, notifyErr := c.notify(ctx, msg)
	if notifyErr == nil {
		if err := c.recordSent(ctx, tx, job, msg.Attempts, true); err != nil {
			// The notifier succeeded but it is not recorded: River tries
			// again, with the same message id for the notifier to dedup.
			return err
		}
		o, r = outcomeSent, reasonNotifierOK
		return nil
	}

	status, failOutcome := MessageStatusFailed, outcomeFailed
	if job.Attempt >= job.MaxAttempts {
		status, failOutcome = MessageStatusDiscarded, outcomeDiscarded
	}
	if err := c.recordFailed(ctx, tx, msg, status, notifyErr); err != nil {
		return errors.Join(fmt.Errorf("outbound: deliver message %s: %w", msg.ID, notifyErr), err)
	}
	o, r = failOutcome, notifyReason
	return fmt.Errorf("outbound: deliver message %s: %w", msg.ID, notifyErr)
}

// notify calls the notifier under NotifyTimeout. It waits for the notifier's
// return, a panic, or the deadline, whichever is first; a notifier that
// ignores its context is left to finish on its own.
func (c *Client) notify(ctx context.Context, msg *Message) (reason, error) {
	timeout := c.config.NotifyTimeout
	notifyCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	type result struct {
		err      error
		panicked bool
	}
	done := make(chan result, 1) // buffered: an abandoned notifier never blocks
	notifier := c.config.Notifier
	msgCopy := *msg
	go func() {
		defer func() {
			if v := recover(); v != nil {
				c.config.Logger.Error("outbound: notifier panicked",
					slog.String("message_id", msg.ID.String()),
					slog.Any("panic", v),
					slog.String("stack", string(debug.Stack())))
				done <- result{err: fmt.Errorf("notifier panicked: %v", v), panicked: true}
			}
		}()
		done <- result{err: notifier.OnOutboundTriggered(notifyCtx, &msgCopy)}
	}()

	select {
	case res := <-done:
		switch {
		case res.panicked:
			return reasonNotifierPanicked, res.err
		case res.err == nil:
			return reasonNotifierOK, nil
		case ctx.Err() == nil && errors.Is(notifyCtx.Err(), context.DeadlineExceeded):
			// A notifier that honoured its context's deadline.
			return reasonNotifierTimeout, fmt.Errorf("notifier timed out after %s: %w", timeout, res.err)
		}
		return reasonNotifierReturnedError, res.err
	case <-notifyCtx.Done():
		if ctx.Err() != nil {
			return reasonWorkerStopped, fmt.Errorf("notifier interrupted: worker stopping: %w", ctx.Err())
		}
		return reasonNotifierTimeout, fmt.Errorf("notifier timed out after %s", timeout)
	}
}

// recordSent marks the message sent and completes its job in the same
// transaction, then commits. markMessage is false when the message is already
// recorded as sent and only the job is left to complete. River's completer
// later finds the job no longer running and leaves it as it is.
func (c *Client) recordSent(ctx context.Context, tx pgx.Tx, job *river.Job[DeliveryArgs], attempts int, markMessage bool) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if markMessage {
		if _, err := tx.Exec(ctx, c.queries.MarkMessageSentCompleteJob, job.Args.MessageID, attempts, job.ID); err != nil {
			return fmt.Errorf("outbound: deliver: mark message sent: %w", err)
		}
	} else if _, err := tx.Exec(ctx, c.queries.CompleteJob, job.ID); err != nil {
		return fmt.Errorf("outbound: deliver: complete job: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("outbound: deliver: commit: %w", err)
	}
	return nil
}

// recordFailed records a failed attempt and commits; River records the job's
// error and schedules the retry itself when the worker returns.
func (c *Client) recordFailed(ctx context.Context, tx pgx.Tx, msg *Message, status MessageStatus, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if _, err := tx.Exec(ctx, c.queries.MarkMessageFailed, msg.ID, status, msg.Attempts, cause.Error()); err != nil {
		return fmt.Errorf("outbound: deliver: mark message %s: %w", status, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("outbound: deliver: commit: %w", err)
	}
	return nil
}
