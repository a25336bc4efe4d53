package delivery

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
	"github.com/cairnloop/outbound/outboundtype"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
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
	msg       *outboundtype.Message
	status    outboundtype.MessageStatus
	reason    outboundtype.EventReason
	lastError string
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
	recorded outboundtype.MessageStatus
	// claimLost: another attempt took the claim over before this one
	// recorded its result.
	claimLost bool
	// dbErr is the database error that stopped the attempt, if any.
	dbErr error
	// stopped: the worker was stopping when the attempt ended.
	stopped bool
	// rateWait is how long the message, pending again after its Notifier
	// returned RateLimited, waits for the pause to end.
	rateWait time.Duration
}

// attempt runs the three steps: claim, notify, record.
func (e *Executor) attempt(ctx context.Context, job *river.Job[outboundtype.DeliveryArgs]) (f attemptFacts) {
	defer func() { f.stopped = stopping(ctx) }()
	cl, err := e.claim(ctx, job)
	if err != nil {
		f.dbErr = fmt.Errorf("claim: %w", err)
		return f
	}
	f.claim = cl
	if !cl.claimed {
		return f
	}
	switch {
	case cl.keyErr != nil:
		f.notify = notifyResult{err: cl.keyErr, panicked: true}
	case stopping(ctx):
		// Stopping: record the attempt failed without calling anyone, and
		// River makes the job available again.
		f.notify = notifyResult{err: fmt.Errorf("worker stopping before the notifier was called: %w", ctx.Err()), stopped: true}
	case e.Notifier != nil:
		f.notified = true
		f.notify = e.notify(ctx, cl.msg, func(ctx context.Context) bool { return e.renewClaim(ctx, cl) })
	}
	switch pause := f.notify.rateLimited(); {
	case f.notify.err == nil:
		f.recorded, f.dbErr = e.recordSent(ctx, job, cl)
	case pause > 0:
		f.recorded, f.rateWait, f.dbErr = e.recordPaused(ctx, cl, job.Priority, min(pause, e.MaxRateLimitedPause), f.notify.err)
	default:
		f.recorded, f.dbErr = e.recordFailure(ctx, cl, failureStatus(job, f.notify), f.notify.err)
	}
	if f.dbErr != nil {
		e.releaseClaim(ctx, cl)
	}
	f.claimLost = f.dbErr == nil && f.recorded == ""
	return f
}

// releaseClaim ends the claim of an attempt that could not record its
// result, so that River's retry may claim the message at once. It tries once:
// if the database is still out of reach, the claim runs out by itself.
func (e *Executor) releaseClaim(ctx context.Context, cl *claim) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RecordTimeout)
	defer cancel()
	_, _ = e.Pool.Exec(ctx, e.Queries.ReleaseClaim, dbutil.PgUUID(cl.msg.ID), dbutil.PgUUID(cl.id))
}

// failureStatus is the status a failed attempt leaves: discarded when the
// Notifier said the failure is permanent or no attempt is left, else failed.
// An attempt cut short by a stopping worker leaves failed even on the last
// attempt: River makes the job available again without counting it.
func failureStatus(job *river.Job[outboundtype.DeliveryArgs], n notifyResult) outboundtype.MessageStatus {
	if n.permanent() || (job.Attempt >= job.MaxAttempts && !n.stopped) {
		return outboundtype.MessageStatusDiscarded
	}
	return outboundtype.MessageStatusFailed
}

// classify turns what an attempt did into its one result.
func classify(job *river.Job[outboundtype.DeliveryArgs], f attemptFacts) deliveryResult {
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

	case f.recorded == outboundtype.MessageStatusSent && !f.notified:
		return deliveryResult{outcome: telemetry.OutcomeNoOp, reason: telemetry.ReasonNoNotifierConfigured,
			final: finalOutcome{msg: cl.msg, status: outboundtype.MessageStatusSent, reason: telemetry.FinalEventReason(outboundtype.MessageStatusSent, telemetry.ReasonNoNotifierConfigured)}}

	case f.recorded == outboundtype.MessageStatusSent:
		return deliveryResult{outcome: telemetry.OutcomeSent, reason: telemetry.ReasonNotifierOK,
			final: finalOutcome{msg: cl.msg, status: outboundtype.MessageStatusSent, reason: telemetry.FinalEventReason(outboundtype.MessageStatusSent, telemetry.ReasonNotifierOK)}}

	case f.recorded == outboundtype.MessageStatusPending:
		// RateLimited: not an attempt, so River's snooze, which does not
		// count one either. Under a limit the message parks, and a
		// dispatcher wakes it when the pause ends; a key without one holds
		// back only its own message, which sleeps the whole pause.
		snooze := f.rateWait
		if cl.limit.limited {
			snooze = parkSnooze(&parking{turn: f.rateWait})
		}
		return deliveryResult{outcome: telemetry.OutcomeDeferred, reason: telemetry.ReasonNotifierRateLimited, err: river.JobSnooze(max(snooze, time.Microsecond))}
	}

	// The Notifier failed, and the failure is recorded; last_error as
	// recordFailure wrote it.
	res := deliveryResult{reason: f.notify.reason(), err: attemptErrorOf(id, f.notify, f.stopped)}
	final := finalOutcome{msg: cl.msg, status: f.recorded, reason: telemetry.FinalEventReason(f.recorded, res.reason),
		lastError: boundedErrorText(f.notify.err.Error())}
	switch f.recorded {
	case outboundtype.MessageStatusCancelled:
		res.outcome = telemetry.OutcomeCancelled
		res.err = river.JobCancel(res.err)
		res.final = final
	case outboundtype.MessageStatusDiscarded:
		res.outcome = telemetry.OutcomeDiscarded
		if f.notify.permanent() {
			// River has no way for a worker to discard a job at once;
			// cancelling it ends it the same way.
			res.err = river.JobCancel(res.err)
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
	case cl.parked != nil:
		// Held back by its rate limit: parked, with no slot promised. A
		// dispatcher wakes the job when a slot is its; the snooze is the
		// safety net.
		return deliveryResult{outcome: telemetry.OutcomeDeferred, reason: telemetry.ReasonRateLimitWait, err: river.JobSnooze(parkSnooze(cl.parked))}
	case cl.heldFor > 0:
		// Another attempt holds the claim: River rescued this job while that
		// attempt still runs, or that attempt could not record its result.
		// Come back when its claim runs out.
		return deliveryResult{outcome: telemetry.OutcomeNoOp, reason: telemetry.ReasonClaimedElsewhere, err: river.JobSnooze(cl.heldFor)}
	case cl.endedUnconfirmed:
		return deliveryResult{outcome: telemetry.OutcomeUnconfirmed, reason: telemetry.ReasonCancelled,
			err:   river.JobCancel(fmt.Errorf("outbound: message %s was cancelled while an attempt that never recorded its result was in flight", id)),
			final: finalOutcome{msg: cl.msg, status: outboundtype.MessageStatusUnconfirmed, reason: telemetry.FinalEventReason(outboundtype.MessageStatusUnconfirmed, telemetry.ReasonCancelled), lastError: cl.msg.LastError}}
	case cl.msg.Status == outboundtype.MessageStatusCancelled:
		return deliveryResult{outcome: telemetry.OutcomeNoOp, reason: telemetry.ReasonCancelled,
			err: river.JobCancel(fmt.Errorf("outbound: message %s was cancelled", id))}
	case cl.msg.Status == outboundtype.MessageStatusSent:
		// A job run again for a message already sent, as from River's UI:
		// River completes it.
		return deliveryResult{outcome: telemetry.OutcomeNoOp, reason: telemetry.ReasonAlreadyFinal}
	case cl.msg.Status == outboundtype.MessageStatusUnconfirmed:
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
	msg     *outboundtype.Message
	claimed bool
	// heldFor is how long another attempt's claim has left to run.
	heldFor time.Duration
	// limit is the message's rate limit key and limit, read before the
	// claim when Config.RateLimits has any.
	limit messageLimit
	// keyErr is RateLimitKey's panic: the message was claimed without a
	// limit, and the attempt fails without calling the Notifier.
	keyErr error
	// parked is set when the message's limit held it back: it waits,
	// parked, for a slot.
	parked *parking
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
func (e *Executor) claim(ctx context.Context, job *river.Job[outboundtype.DeliveryArgs]) (*claim, error) {
	id := job.Args.MessageID
	cl := &claim{id: newClaimID()}
	if len(e.RateLimits) > 0 {
		// The key comes from the message, so it is read first.
		msg, stored, err := e.readKey(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return cl, nil
		}
		if err != nil {
			return nil, err
		}
		key, err := e.keyOf(msg, stored)
		if err != nil {
			// Claimed without a limit, and failed as a Notifier's panic is.
			cl.keyErr = err
		} else {
			cl.limit = e.limitOf(key)
		}
	}
	seconds := e.ClaimLength.Seconds()
	for range claimRaces {
		var (
			msg    *outboundtype.Message
			parked *parking
			err    error
		)
		if cl.limit.limited {
			if err = e.ensureRateLimitRow(ctx, cl.limit); err != nil {
				return nil, err
			}
			msg, parked, err = e.claimLimited(ctx, id, cl.id, job.Attempt, job.Priority, cl.limit)
		} else {
			// Retrying is safe: the claim id makes a claim that committed
			// unacknowledged claimable again by the same attempt.
			err = dbutil.RetryTransient(ctx, func(ctx context.Context) (err error) {
				msg, err = dbutil.ScanMessage(e.Pool.QueryRow(ctx, e.Queries.ClaimMessage, dbutil.PgUUID(id), dbutil.PgUUID(cl.id), job.Attempt, seconds))
				return err
			})
		}
		if err == nil && parked != nil {
			cl.msg, cl.parked = msg, parked
			e.Kick(cl.limit.key)
			return cl, nil
		}
		if err == nil {
			cl.msg, cl.claimed = msg, true
			if cl.limit.limited {
				e.ensureDispatcher(cl.limit.key)
			}
			return cl, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, err
		}

		found, err := e.readClaim(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return cl, nil
		}
		if err != nil {
			return nil, err
		}
		cl.msg = found.msg
		switch {
		case found.msg.Status != outboundtype.MessageStatusDelivering:
			if slices.Contains(dbutil.UndeliveredStatuses, found.msg.Status) {
				// Released between the update and the read, or the key's
				// row was deleted since this process created it.
				e.rateLimitRows.Delete(cl.limit.key)
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
			err := e.Pool.QueryRow(ctx, e.Queries.MarkUnconfirmed, id).Scan(&lastError)
			if err == nil {
				cl.msg.Status, cl.msg.LastError, cl.endedUnconfirmed = outboundtype.MessageStatusUnconfirmed, lastError, true
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
	msg             *outboundtype.Message
	claimID         *uuid.UUID
	cancelRequested bool
	// left is how long the claim has to run; zero or less when it has run
	// out or there is none.
	left time.Duration
}

// readClaim reads a message and its claim.
func (e *Executor) readClaim(ctx context.Context, id uuid.UUID) (*foundClaim, error) {
	var (
		f           foundClaim
		leftSeconds *float64
	)
	msg, err := dbutil.ScanMessage(e.Pool.QueryRow(ctx, e.Queries.SelectMessageClaim, id), &f.claimID, &f.cancelRequested, &leftSeconds)
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
func (e *Executor) recordSent(ctx context.Context, job *river.Job[outboundtype.DeliveryArgs], cl *claim) (outboundtype.MessageStatus, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RecordTimeout)
	defer cancel()
	var recorded bool
	err := dbutil.RetryTransient(ctx, func(ctx context.Context) (err error) {
		recorded, err = e.recordSentCompleteJob(ctx, cl.msg.ID, cl.id, job.ID)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("record sent: %w", err)
	}
	if recorded {
		return outboundtype.MessageStatusSent, nil
	}
	return e.recordedBefore(ctx, cl, outboundtype.MessageStatusSent)
}

// recordFailure records a failed attempt, if this attempt's claim still holds
// the message: failed or discarded, or cancelled when CancelEnvelope asked
// for it while the attempt was in flight. It returns the status the message
// was left in by this attempt, or "" when another attempt took the claim over.
func (e *Executor) recordFailure(ctx context.Context, cl *claim, status outboundtype.MessageStatus, cause error) (outboundtype.MessageStatus, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RecordTimeout)
	defer cancel()
	lastError := boundedErrorText(cause.Error())
	var rows int64
	err := dbutil.RetryTransient(ctx, func(ctx context.Context) error {
		tag, err := e.Pool.Exec(ctx, e.Queries.RecordFailed, dbutil.PgUUID(cl.msg.ID), dbutil.PgUUID(cl.id), status, lastError)
		rows = tag.RowsAffected()
		return err
	})
	if err != nil {
		return "", fmt.Errorf("record %s: %w", status, err)
	}
	if rows == 1 {
		return status, nil
	}
	found, err := e.readClaim(ctx, cl.msg.ID)
	if err != nil {
		return "", fmt.Errorf("record %s: %w", status, err)
	}
	if found.msg.Status == outboundtype.MessageStatusDelivering && found.cancelRequested && found.heldBy(cl) {
		return e.recordCancelledInFlight(ctx, cl, lastError)
	}
	return found.recordedBy(cl, status, outboundtype.MessageStatusCancelled), nil
}

// recordPaused records an attempt whose Notifier returned RateLimited: the
// message pending again, booked for the pause's end, and the wait until
// then. When a cancel was requested while the call was in flight, or the
// claim was taken over, it is recorded as any failed attempt.
func (e *Executor) recordPaused(ctx context.Context, cl *claim, priority int, pause time.Duration, cause error) (outboundtype.MessageStatus, time.Duration, error) {
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RecordTimeout)
	defer cancel()
	wait, ok, err := e.recordRateLimited(recordCtx, cl.msg.ID, cl.id, priority, cl.limit, pause, boundedErrorText(cause.Error()))
	if err != nil {
		return "", 0, err
	}
	if ok {
		return outboundtype.MessageStatusPending, wait, nil
	}
	// A first try that committed unacknowledged left it pending, booked.
	if found, err := e.readClaim(recordCtx, cl.msg.ID); err == nil && found.heldBy(cl) && found.msg.Status == outboundtype.MessageStatusPending {
		return outboundtype.MessageStatusPending, pause, nil
	}
	status, err := e.recordFailure(ctx, cl, outboundtype.MessageStatusFailed, cause)
	return status, 0, err
}

// renewClaim makes the attempt's claim run a claim's length from now, while
// its Notifier call runs past its deadline. It reports whether to go on
// renewing: false once the claim is lost, which the attempt's record then
// finds. A database error leaves it to the next renewal.
func (e *Executor) renewClaim(ctx context.Context, cl *claim) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RecordTimeout)
	defer cancel()
	tag, err := e.Pool.Exec(ctx, e.Queries.RenewClaim, pgx.NamedArgs{
		"id": dbutil.PgUUID(cl.msg.ID), "claim_id": dbutil.PgUUID(cl.id), "claim_secs": e.ClaimLength.Seconds(),
	})
	if err != nil {
		e.Logger.Warn("outbound: renew the claim of a notifier call past its deadline",
			slog.String("message_id", cl.msg.ID.String()), slog.String("error", err.Error()))
		return true
	}
	return tag.RowsAffected() == 1
}

// recordCancelledInFlight ends a message cancelled, in flight when
// CancelEnvelope asked for it, after its attempt failed. Like every cancel it
// locks the envelope before the message, so that cancels cannot deadlock, and
// marks the envelope cancelled when it was the last message left.
func (e *Executor) recordCancelledInFlight(ctx context.Context, cl *claim, lastError string) (outboundtype.MessageStatus, error) {
	var recorded bool
	err := e.WithTx(ctx, func(tx pgx.Tx) error {
		envelopeID := cl.msg.BulkEnvelopeID
		hasEnvelope := envelopeID != uuid.Nil
		if hasEnvelope {
			found, err := e.lockEnvelope(ctx, tx, envelopeID)
			if err != nil {
				return err
			}
			hasEnvelope = found
		}
		// The actor is whoever asked for the cancel while the attempt ran.
		var actor *string
		err := tx.QueryRow(ctx, e.Queries.RecordCancelledInFlight, cl.msg.ID, cl.id, lastError).Scan(&actor)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		recorded = true
		if hasEnvelope {
			if _, err := tx.Exec(ctx, e.Queries.MarkEnvelopeCancelledIfAllCancelled, envelopeID, actor); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("record cancelled: %w", err)
	}
	if recorded {
		return outboundtype.MessageStatusCancelled, nil
	}
	return e.recordedBefore(ctx, cl, outboundtype.MessageStatusCancelled)
}

// recordedBefore reads the message to find out why a guarded record changed
// nothing; see foundClaim.recordedBy.
func (e *Executor) recordedBefore(ctx context.Context, cl *claim, wrote ...outboundtype.MessageStatus) (outboundtype.MessageStatus, error) {
	found, err := e.readClaim(ctx, cl.msg.ID)
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
func (f *foundClaim) recordedBy(cl *claim, wrote ...outboundtype.MessageStatus) outboundtype.MessageStatus {
	if f.heldBy(cl) && slices.Contains(wrote, f.msg.Status) {
		return f.msg.Status
	}
	return ""
}
