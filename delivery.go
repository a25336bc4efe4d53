package outbound

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/cairnloop/outbound/internal/dbutil"
	"github.com/cairnloop/outbound/internal/telemetry"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"go.opentelemetry.io/otel/trace"
)

// deliveryResult is one attempt's result, computed once by classify: what the
// worker returns to River, the outcome and reason of its span and metrics,
// and the final outcome Subscribe reports.
type deliveryResult struct {
	outcome telemetry.Outcome
	reason  telemetry.Reason
	// err is what Work returns to River: nil, an error carrying no more of
	// the Notifier's text than last_error, river.JobCancel or
	// river.JobSnooze.
	err error
	// retryAt, when set, is when River retries the job (RetryAfter).
	retryAt time.Time
	// final is the final outcome this attempt recorded for its message; its
	// msg is nil when the message is not final, or another attempt made it
	// so.
	final finalOutcome
}

// finalOutcome is what an attempt that made its message final tells
// subscribers. It is kept as values, and made an Event only when someone
// listens.
type finalOutcome struct {
	msg       *Message
	status    MessageStatus
	reason    EventReason
	lastError string
}

// event is the Event of the outcome, or nil for none.
func (f finalOutcome) event() *Event {
	if f.msg == nil {
		return nil
	}
	return messageEvent(f.msg, f.status, f.reason, f.lastError)
}

// failure is the error that failed the attempt, for its span, or nil: an
// attempt failed when the Notifier or the database failed it, whatever the
// message became.
func (r deliveryResult) failure() error {
	if r.outcome == telemetry.OutcomeFailed || r.outcome == telemetry.OutcomeDiscarded || r.outcome == telemetry.OutcomeCancelled {
		return r.err
	}
	return nil
}

// attemptFacts is what one attempt found and did, step by step. classify
// turns it into a deliveryResult.
type attemptFacts struct {
	claim *claim
	// notified: the Notifier was called, and notify is what it came to.
	notified bool
	notify   notifyResult
	// recorded is the status the record step left the message in; empty
	// when the step did not run or the claim was lost.
	recorded MessageStatus
	// claimLost: another attempt took the claim over before this one
	// recorded its result.
	claimLost bool
	// dbErr is the database error that stopped the attempt, if any.
	dbErr error
	// stopped: the worker was stopping when the attempt ended.
	stopped bool
	// rateWait is how long the message, pending again after its Notifier
	// returned RateLimited, waits for its booking.
	rateWait time.Duration
}

// deliver makes one delivery attempt and records it in telemetry.
//
// An attempt is a lease, as River's own fetch is:
//
//  1. Claim: one short committed update makes the message delivering, under a
//     claim id of the attempt's own, until a time after which a claim left
//     by a dead worker may be taken over.
//  2. Notify: the Notifier runs with nothing of the library's open.
//  3. Record: an update guarded by the claim id, so that only the attempt
//     holding the claim can record its result. Sent is recorded in the same
//     statement that completes the River job.
//
// A cancel never waits for a Notifier: a message in flight is not
// cancellable. The claim's expiry keeps an attempt that River rescued while
// the first was still running from calling the Notifier beside it.
func (c *Client) deliver(ctx context.Context, job *river.Job[DeliveryArgs]) deliveryResult {
	start := time.Now()
	args := job.Args
	ctx, span := c.telemetry.Tracer().Start(ctx, telemetry.SpanDeliver, trace.WithAttributes(
		telemetry.AttrMessageID.String(args.MessageID.String()),
		telemetry.AttrConversationID.Int64(args.ConversationID),
		telemetry.AttrTemplateID.String(args.TemplateID),
		telemetry.AttrAttempt.Int(job.Attempt),
	))
	if args.BulkEnvelopeID != nil {
		span.SetAttributes(telemetry.AttrBulkEnvelopeID.String(args.BulkEnvelopeID.String()))
	}
	res := classify(job, c.attempt(ctx, job))
	c.telemetry.RecordDelivery(ctx, span, res.outcome, res.reason, res.failure(), start)
	if res.final.msg != nil {
		c.telemetry.RecordFinal(ctx, res.final.msg, res.final.status)
	}
	if c.subscriptions.listening() {
		if ev := res.final.event(); ev != nil {
			c.subscriptions.publish(ctx, ev)
		}
	}
	return res
}

// attempt runs the three steps: claim, notify, record.
func (c *Client) attempt(ctx context.Context, job *river.Job[DeliveryArgs]) (f attemptFacts) {
	defer func() { f.stopped = stopping(ctx) }()
	cl, err := c.claim(ctx, job)
	if err != nil {
		f.dbErr = fmt.Errorf("claim: %w", err)
		return f
	}
	f.claim = cl
	if !cl.claimed {
		return f
	}
	switch {
	case stopping(ctx):
		// Stopping: record the attempt failed without calling anyone, and
		// River makes the job available again.
		f.notify = notifyResult{err: fmt.Errorf("worker stopping before the notifier was called: %w", ctx.Err()), stopped: true}
	case c.config.Notifier != nil:
		f.notified = true
		f.notify = c.notify(ctx, cl.msg, func(ctx context.Context) bool { return c.renewClaim(ctx, cl) })
	}
	switch pause := f.notify.rateLimited(); {
	case f.notify.err == nil:
		f.recorded, f.dbErr = c.recordSent(ctx, job, cl)
	case pause > 0:
		f.recorded, f.rateWait, f.dbErr = c.recordPaused(ctx, cl, pause, f.notify.err)
	default:
		f.recorded, f.dbErr = c.recordFailure(ctx, cl, failureStatus(job, f.notify), f.notify.err)
	}
	if f.dbErr != nil {
		c.releaseClaim(ctx, cl)
	}
	f.claimLost = f.dbErr == nil && f.recorded == ""
	return f
}

// releaseClaim ends the claim of an attempt that could not record its
// result, so that River's retry may claim the message at once. It tries once:
// if the database is still out of reach, the claim runs out by itself.
func (c *Client) releaseClaim(ctx context.Context, cl *claim) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	_, _ = c.pool.Exec(ctx, c.queries.ReleaseClaim, dbutil.PgUUID(cl.msg.ID), dbutil.PgUUID(cl.id))
}

// failureStatus is the status a failed attempt leaves: discarded when the
// Notifier said the failure is permanent or no attempt is left, else failed.
// An attempt cut short by a stopping worker leaves failed even on the last
// attempt: River makes the job available again without counting it.
func failureStatus(job *river.Job[DeliveryArgs], n notifyResult) MessageStatus {
	if n.permanent() || (job.Attempt >= job.MaxAttempts && !n.stopped) {
		return MessageStatusDiscarded
	}
	return MessageStatusFailed
}

// classify turns what an attempt did into its one result.
func classify(job *river.Job[DeliveryArgs], f attemptFacts) deliveryResult {
	id := job.Args.MessageID
	cl := f.claim
	switch {
	case f.dbErr != nil:
		r := telemetry.ReasonDatabaseError
		if f.stopped && !f.notified {
			r = telemetry.ReasonWorkerStopped // stopped before the notifier was reached
		}
		err := fmt.Errorf("outbound: deliver message %s: %w", id, f.dbErr)
		if f.notified && f.notify.err != nil {
			err = fmt.Errorf("outbound: deliver message %s: %s; then %w", id, boundedErrorText(f.notify.err.Error()), f.dbErr)
		}
		return deliveryResult{outcome: telemetry.OutcomeFailed, reason: r, err: err}

	case !cl.claimed:
		return classifyUnclaimed(id, cl)

	case f.claimLost:
		return deliveryResult{outcome: telemetry.OutcomeFailed, reason: telemetry.ReasonClaimLost,
			err: fmt.Errorf("outbound: deliver message %s: another attempt took over the claim before this one recorded its result", id)}

	case f.recorded == MessageStatusSent && !f.notified:
		return deliveryResult{outcome: telemetry.OutcomeNoOp, reason: telemetry.ReasonNoNotifierConfigured,
			final: finalOutcome{msg: cl.msg, status: MessageStatusSent, reason: EventReasonNoNotifier}}

	case f.recorded == MessageStatusSent:
		return deliveryResult{outcome: telemetry.OutcomeSent, reason: telemetry.ReasonNotifierOK,
			final: finalOutcome{msg: cl.msg, status: MessageStatusSent, reason: EventReasonNotifierOK}}

	case f.recorded == MessageStatusPending:
		// RateLimited: not an attempt, so River's snooze, which does not
		// count one either. A key without a limit has no booking to hop
		// towards, so its message sleeps the whole pause.
		snooze := f.rateWait
		if cl.limit.limited {
			snooze = snoozeFor(snooze)
		}
		return deliveryResult{outcome: telemetry.OutcomeDeferred, reason: telemetry.ReasonNotifierRateLimited, err: river.JobSnooze(max(snooze, time.Microsecond))}
	}

	// The Notifier failed, and the failure is recorded; last_error as
	// recordFailure wrote it.
	res := deliveryResult{reason: f.notify.reason(), err: attemptErrorOf(id, f.notify, f.stopped)}
	final := finalOutcome{msg: cl.msg, status: f.recorded, lastError: boundedErrorText(f.notify.err.Error())}
	switch f.recorded {
	case MessageStatusCancelled:
		res.outcome = telemetry.OutcomeCancelled
		res.err = river.JobCancel(res.err)
		// Only CancelEnvelope cancels a message in flight.
		final.reason = EventReasonCancelEnvelope
		res.final = final
	case MessageStatusDiscarded:
		res.outcome = telemetry.OutcomeDiscarded
		final.reason = EventReasonAttemptsExhausted
		if f.notify.permanent() {
			// River has no way for a worker to discard a job at once;
			// cancelling it ends it the same way.
			res.err = river.JobCancel(res.err)
			final.reason = EventReasonPermanentError
		}
		res.final = final
	default:
		res.outcome = telemetry.OutcomeFailed
		if d := f.notify.retryAfter(); d > 0 {
			res.retryAt = time.Now().Add(d)
		}
	}
	return res
}

// classifyUnclaimed is the result of an attempt that found its message not
// claimable.
func classifyUnclaimed(id uuid.UUID, cl *claim) deliveryResult {
	switch {
	case cl.msg == nil:
		// Someone deleted the row; retrying cannot bring it back.
		return deliveryResult{outcome: telemetry.OutcomeDiscarded, reason: telemetry.ReasonMessageNotFound,
			err: river.JobCancel(fmt.Errorf("outbound: deliver: message %s not found", id))}
	case cl.rateWait > 0:
		// Held back by its rate limit: booked a slot, and back then.
		return deliveryResult{outcome: telemetry.OutcomeDeferred, reason: telemetry.ReasonRateLimitWait, err: river.JobSnooze(snoozeFor(cl.rateWait))}
	case cl.heldFor > 0:
		// Another attempt holds the claim: River rescued this job while that
		// attempt still runs, or that attempt could not record its result.
		// Come back when its claim runs out.
		return deliveryResult{outcome: telemetry.OutcomeNoOp, reason: telemetry.ReasonClaimedElsewhere, err: river.JobSnooze(cl.heldFor)}
	case cl.endedUnconfirmed:
		return deliveryResult{outcome: telemetry.OutcomeUnconfirmed, reason: telemetry.ReasonCancelled,
			err:   river.JobCancel(fmt.Errorf("outbound: message %s was cancelled while an attempt that never recorded its result was in flight", id)),
			final: finalOutcome{msg: cl.msg, status: MessageStatusUnconfirmed, reason: EventReasonResultUnrecorded, lastError: cl.msg.LastError}}
	case cl.msg.Status == MessageStatusCancelled:
		return deliveryResult{outcome: telemetry.OutcomeNoOp, reason: telemetry.ReasonCancelled,
			err: river.JobCancel(fmt.Errorf("outbound: message %s was cancelled", id))}
	case cl.msg.Status == MessageStatusSent:
		// A job run again for a message already sent, as from River's UI:
		// River completes it.
		return deliveryResult{outcome: telemetry.OutcomeNoOp, reason: telemetry.ReasonAlreadyFinal}
	case cl.msg.Status == MessageStatusUnconfirmed:
		return deliveryResult{outcome: telemetry.OutcomeNoOp, reason: telemetry.ReasonAlreadyFinal,
			err: river.JobCancel(fmt.Errorf("outbound: message %s is unconfirmed: an attempt that never recorded its result may have delivered it, so it is not attempted again", id))}
	}
	// Discarded: final, and its dedup key is free.
	return deliveryResult{outcome: telemetry.OutcomeNoOp, reason: telemetry.ReasonAlreadyFinal,
		err: river.JobCancel(fmt.Errorf("outbound: message %s was discarded; trigger it again to resend", id))}
}

func attemptErrorOf(id uuid.UUID, n notifyResult, stopped bool) error {
	e := &attemptError{text: fmt.Sprintf("outbound: deliver message %s: %s", id, boundedErrorText(n.err.Error()))}
	if stopped {
		e.cause = context.Canceled
	}
	return e
}

// claim is the first step's result.
type claim struct {
	// id is this attempt's claim id.
	id uuid.UUID
	// msg is the message as claimed, or as found when not claimed; nil when
	// there is no such message.
	msg     *Message
	claimed bool
	// heldFor is how long another attempt's claim has left to run.
	heldFor time.Duration
	// limit is the message's rate limit key and limit, read before the
	// claim when Config.RateLimits has any.
	limit messageLimit
	// rateWait is how long until the slot the message's rate limit booked
	// it, when it holds the message back.
	rateWait time.Duration
	// endedUnconfirmed: the message was in flight under a claim that ran out
	// with a cancel requested, and this attempt made it unconfirmed.
	endedUnconfirmed bool
}

// newClaimID returns an id for one attempt's claim. It must be unique, not
// secret, so it comes from the runtime's fast random source rather than from
// crypto/rand, which costs a system call per id.
func newClaimID() uuid.UUID {
	var id uuid.UUID
	binary.LittleEndian.PutUint64(id[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(id[8:], rand.Uint64())
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return id
}

// claimRaces bounds how often claim tries again when the message changes
// between its update and its read.
const claimRaces = 3

// claim claims the message for this attempt in one committed statement, or
// finds out why it cannot.
func (c *Client) claim(ctx context.Context, job *river.Job[DeliveryArgs]) (*claim, error) {
	id := job.Args.MessageID
	cl := &claim{id: newClaimID()}
	if len(c.config.RateLimits) > 0 {
		// The key comes from the message, so it is read first.
		msg, wait, err := c.readWait(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return cl, nil
		}
		if err != nil {
			return nil, err
		}
		cl.limit = c.limitOf(msg)
		if cl.limit.limited && wait > rateWaitSlack && slices.Contains(undeliveredStatuses, msg.Status) {
			// Woken before its booking, as a long wait's hop is: back to
			// sleep without touching the key's row.
			cl.msg, cl.rateWait = msg, wait
			return cl, nil
		}
	}
	seconds := claimLength(c.config).Seconds()
	for range claimRaces {
		var (
			msg  *Message
			wait time.Duration
			err  error
		)
		if cl.limit.limited {
			if err = c.ensureRateLimitRow(ctx, cl.limit.key); err != nil {
				return nil, err
			}
			msg, wait, err = c.claimRated(ctx, id, cl.id, job.Attempt, cl.limit)
		} else {
			// Retrying is safe: the claim id makes a claim that committed
			// unacknowledged claimable again by the same attempt.
			err = dbutil.RetryTransient(ctx, func(ctx context.Context) (err error) {
				msg, err = dbutil.ScanMessage(c.pool.QueryRow(ctx, c.queries.ClaimMessage, dbutil.PgUUID(id), dbutil.PgUUID(cl.id), job.Attempt, seconds))
				return err
			})
		}
		if err == nil && wait > 0 {
			cl.msg, cl.rateWait = msg, wait
			return cl, nil
		}
		if err == nil {
			cl.msg, cl.claimed = msg, true
			return cl, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, err
		}

		found, err := c.readClaim(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return cl, nil
		}
		if err != nil {
			return nil, err
		}
		cl.msg = found.msg
		switch {
		case found.msg.Status != MessageStatusDelivering:
			if slices.Contains(undeliveredStatuses, found.msg.Status) {
				// Released between the update and the read, or the key's
				// row was deleted since this process created it.
				c.rateLimitRows.Delete(cl.limit.key)
				continue
			}
			return cl, nil
		case found.left > 0:
			cl.heldFor = found.left
			return cl, nil
		case found.cancelRequested:
			// Its last attempt may have delivered it, so it is not
			// cancelled; the cancel forbids another attempt.
			var lastError string
			err := c.pool.QueryRow(ctx, c.queries.MarkUnconfirmed, id).Scan(&lastError)
			if err == nil {
				cl.msg.Status, cl.msg.LastError, cl.endedUnconfirmed = MessageStatusUnconfirmed, lastError, true
				return cl, nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return nil, fmt.Errorf("mark unconfirmed: %w", err)
			}
		}
	}
	// Still changing under us: come back shortly.
	cl.heldFor = time.Second
	return cl, nil
}

// foundClaim is a message as read with its claim.
type foundClaim struct {
	msg             *Message
	claimID         *uuid.UUID
	cancelRequested bool
	// left is how long the claim has to run; zero or less when it has run
	// out or there is none.
	left time.Duration
}

// readClaim reads a message and its claim.
func (c *Client) readClaim(ctx context.Context, id uuid.UUID) (*foundClaim, error) {
	var (
		f           foundClaim
		leftSeconds *float64
	)
	msg, err := dbutil.ScanMessage(c.pool.QueryRow(ctx, c.queries.SelectMessageClaim, id), &f.claimID, &f.cancelRequested, &leftSeconds)
	if err != nil {
		return nil, err
	}
	f.msg = msg
	if leftSeconds != nil {
		f.left = time.Duration(*leftSeconds * float64(time.Second))
	}
	return &f, nil
}

// recordSent marks the message sent and completes its River job in one
// statement, if this attempt's claim still holds the message. It returns the
// status the message was left in by this attempt, or "" when another attempt
// took the claim over.
func (c *Client) recordSent(ctx context.Context, job *river.Job[DeliveryArgs], cl *claim) (MessageStatus, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	var recorded bool
	err := dbutil.RetryTransient(ctx, func(ctx context.Context) (err error) {
		recorded, err = c.recordSentCompleteJob(ctx, cl.msg.ID, cl.id, job.ID)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("record sent: %w", err)
	}
	if recorded {
		return MessageStatusSent, nil
	}
	return c.recordedBefore(ctx, cl, MessageStatusSent)
}

// recordFailure records a failed attempt, if this attempt's claim still holds
// the message: failed or discarded, or cancelled when CancelEnvelope asked
// for it while the attempt was in flight. It returns the status the message
// was left in by this attempt, or "" when another attempt took the claim over.
func (c *Client) recordFailure(ctx context.Context, cl *claim, status MessageStatus, cause error) (MessageStatus, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	lastError := boundedErrorText(cause.Error())
	var rows int64
	err := dbutil.RetryTransient(ctx, func(ctx context.Context) error {
		tag, err := c.pool.Exec(ctx, c.queries.RecordFailed, dbutil.PgUUID(cl.msg.ID), dbutil.PgUUID(cl.id), status, lastError)
		rows = tag.RowsAffected()
		return err
	})
	if err != nil {
		return "", fmt.Errorf("record %s: %w", status, err)
	}
	if rows == 1 {
		return status, nil
	}
	found, err := c.readClaim(ctx, cl.msg.ID)
	if err != nil {
		return "", fmt.Errorf("record %s: %w", status, err)
	}
	if found.msg.Status == MessageStatusDelivering && found.cancelRequested && found.heldBy(cl) {
		return c.recordCancelledInFlight(ctx, cl, lastError)
	}
	return found.recordedBy(cl, status, MessageStatusCancelled), nil
}

// recordPaused records an attempt whose Notifier returned RateLimited: the
// message pending again, booked for the pause's end, and the wait until
// then. When a cancel was requested while the call was in flight, or the
// claim was taken over, it is recorded as any failed attempt.
func (c *Client) recordPaused(ctx context.Context, cl *claim, pause time.Duration, cause error) (MessageStatus, time.Duration, error) {
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	wait, ok, err := c.recordRateLimited(recordCtx, cl.msg.ID, cl.id, cl.limit, pause, boundedErrorText(cause.Error()))
	if err != nil {
		return "", 0, err
	}
	if ok {
		return MessageStatusPending, wait, nil
	}
	// A first try that committed unacknowledged left it pending, booked.
	if found, err := c.readClaim(recordCtx, cl.msg.ID); err == nil && found.heldBy(cl) && found.msg.Status == MessageStatusPending {
		return MessageStatusPending, pause, nil
	}
	status, err := c.recordFailure(ctx, cl, MessageStatusFailed, cause)
	return status, 0, err
}

// renewClaim makes the attempt's claim run a claim's length from now, while
// its Notifier call runs past its deadline. It reports whether to go on
// renewing: false once the claim is lost, which the attempt's record then
// finds. A database error leaves it to the next renewal.
func (c *Client) renewClaim(ctx context.Context, cl *claim) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	tag, err := c.pool.Exec(ctx, c.queries.RenewClaim, pgx.NamedArgs{
		"id": dbutil.PgUUID(cl.msg.ID), "claim_id": dbutil.PgUUID(cl.id), "claim_secs": claimLength(c.config).Seconds(),
	})
	if err != nil {
		c.config.Logger.Warn("outbound: renew the claim of a notifier call past its deadline",
			slog.String("message_id", cl.msg.ID.String()), slog.String("error", err.Error()))
		return true
	}
	return tag.RowsAffected() == 1
}

// recordCancelledInFlight ends a message cancelled, in flight when
// CancelEnvelope asked for it, after its attempt failed. Like every cancel it
// locks the envelope before the message, so that cancels cannot deadlock, and
// marks the envelope cancelled when it was the last message left.
func (c *Client) recordCancelledInFlight(ctx context.Context, cl *claim, lastError string) (MessageStatus, error) {
	var recorded bool
	err := c.withTx(ctx, func(tx pgx.Tx) error {
		envelopeID := cl.msg.BulkEnvelopeID
		hasEnvelope := envelopeID != uuid.Nil
		if hasEnvelope {
			if _, err := c.lockEnvelope(ctx, tx, envelopeID); errors.Is(err, ErrNotFound) {
				hasEnvelope = false
			} else if err != nil {
				return err
			}
		}
		// The actor is whoever asked for the cancel while the attempt ran.
		var actor *string
		err := tx.QueryRow(ctx, c.queries.RecordCancelledInFlight, cl.msg.ID, cl.id, lastError).Scan(&actor)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		recorded = true
		if hasEnvelope {
			if _, err := tx.Exec(ctx, c.queries.MarkEnvelopeCancelledIfAllCancelled, envelopeID, actor); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("record cancelled: %w", err)
	}
	if recorded {
		return MessageStatusCancelled, nil
	}
	return c.recordedBefore(ctx, cl, MessageStatusCancelled)
}

// recordedBefore reads the message to find out why a guarded record changed
// nothing; see foundClaim.recordedBy.
func (c *Client) recordedBefore(ctx context.Context, cl *claim, wrote ...MessageStatus) (MessageStatus, error) {
	found, err := c.readClaim(ctx, cl.msg.ID)
	if err != nil {
		return "", fmt.Errorf("read claim: %w", err)
	}
	return found.recordedBy(cl, wrote...), nil
}

// heldBy reports whether the message carries the attempt's claim id.
func (f *foundClaim) heldBy(cl *claim) bool {
	return f.claimID != nil && *f.claimID == cl.id
}

// recordedBy says why a guarded record changed nothing. Either a first try of
// it committed and only its acknowledgement was lost, and the message carries
// the attempt's claim id and one of the statuses the record writes, which it
// returns; or the claim was taken over (by another attempt, or by Reconcile
// once the job had ended), and it returns "".
func (f *foundClaim) recordedBy(cl *claim, wrote ...MessageStatus) MessageStatus {
	if f.heldBy(cl) && slices.Contains(wrote, f.msg.Status) {
		return f.msg.Status
	}
	return ""
}
