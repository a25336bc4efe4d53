package telemetry

import (
	"errors"
	"fmt"

	"github.com/cairnloop/outbound/outboundtype"
)

// Reason is the one name of why a call or a delivery attempt ended as it
// did: with outcome, the only attribute of the library's metrics; the
// outbound.reason attribute of its spans; and, for a failure, the span's
// error.type (see ErrorType). Each failure is named once, here.
type Reason string

// Reasons of a delivery attempt. The Notifier's own answers that end a
// message are the event reasons of the same name (derived from them, below),
// so that a metric, a span and an event name one answer alike.
const (
	ReasonNotifierOK                   = Reason(outboundtype.EventReasonNotifierOK)
	ReasonNotifierReturnedError Reason = "notifier_returned_error"
	ReasonNotifierTimeout       Reason = "notifier_timeout"
	ReasonNotifierPanicked      Reason = "notifier_panicked"
	// ReasonNotifierPermanentError: the notifier returned Permanent(err).
	ReasonNotifierPermanentError = Reason(outboundtype.EventReasonPermanentError)
	// ReasonNotifierRetryAfter: the notifier returned RetryAfter(d, err),
	// a failed attempt that counts.
	ReasonNotifierRetryAfter Reason = "notifier_retry_after"
	// ReasonNotifierRateLimited: the notifier returned RateLimited(d, err):
	// the key is paused for d, and the attempt is not counted (outcome
	// deferred).
	ReasonNotifierRateLimited Reason = "notifier_rate_limited"
	// ReasonRateLimitWait: the message's rate limit held it back before
	// its Notifier was called, and booked it a slot (outcome deferred).
	ReasonRateLimitWait        Reason = "rate_limit_wait"
	ReasonNoNotifierConfigured        = Reason(outboundtype.EventReasonNoNotifier)
	ReasonCancelled            Reason = "cancelled"
	// ReasonWorkerStopped: the worker was stopped while the notifier ran.
	ReasonWorkerStopped Reason = "worker_stopped"
	// ReasonAlreadyFinal: the job ran again for a message already sent or
	// discarded, e.g. retried by hand; nothing was delivered.
	ReasonAlreadyFinal Reason = "already_final"
	// ReasonMessageNotFound: the message row was deleted; the job is
	// cancelled.
	ReasonMessageNotFound Reason = "message_not_found"
	// ReasonDatabaseError: the attempt could not claim its message or record
	// the notifier's result, so it counts as failed and River tries again.
	ReasonDatabaseError Reason = "database_error"
	// ReasonClaimedElsewhere: another attempt holds the message's claim, so
	// this one waits for the claim to run out.
	ReasonClaimedElsewhere Reason = "claimed_elsewhere"
	// ReasonClaimLost: another attempt took the claim over before this one
	// recorded its result.
	ReasonClaimLost Reason = "claim_lost"
)

// Reasons of a failed trigger or bulk trigger: the reason attribute of
// outcome failed, on outbound.trigger.messages and the duration
// histograms. A failure that is
// none of the others is ReasonDatabaseError.
const (
	ReasonInvalidArgument     Reason = "invalid_argument"
	ReasonSchemaMismatch      Reason = "schema_mismatch"
	ReasonAuditorError        Reason = "auditor_error"
	ReasonIdempotencyConflict Reason = "idempotency_conflict"
	// ReasonContextDone: the caller's context was cancelled or ran out.
	ReasonContextDone Reason = "context_done"
	// ReasonBatchTooLarge: a bulk over the cap, refused (outcome
	// refused_cap_exceeded, or its _audit_failed form).
	ReasonBatchTooLarge Reason = "batch_too_large"
	// ReasonNotFound and ReasonNotCancellable are the failures of calls
	// that name a message or an envelope.
	ReasonNotFound       Reason = "not_found"
	ReasonNotCancellable Reason = "not_cancellable"
)

// Outcome is what became of a call or a delivery attempt: with Reason, the
// only attribute of the library's metrics.
type Outcome string

const (
	OutcomeTriggered Outcome = "triggered"
	// OutcomeStaged: written in the caller's transaction, whose commit the
	// library cannot see; a TriggerTx or BulkTriggerTx.
	OutcomeStaged                        Outcome = "staged"
	OutcomeDuplicate                     Outcome = "duplicate"
	OutcomeFailed                        Outcome = "failed"
	OutcomeSubmitted                     Outcome = "submitted"
	OutcomeReplayed                      Outcome = "replayed"
	OutcomeRefusedCapExceeded            Outcome = "refused_cap_exceeded"
	OutcomeRefusedCapExceededAuditFailed Outcome = "refused_cap_exceeded_audit_failed"
	// OutcomeRefused counts the recipients of a refused bulk in
	// outbound.trigger.messages: no message was written for them.
	OutcomeRefused Outcome = "refused"

	// Delivery outcomes. failed means the attempt failed and will be
	// retried; discarded means the last attempt failed, or the Notifier
	// said the failure is permanent. cancelled means the attempt failed
	// after CancelEnvelope asked for its message to be cancelled.
	// unconfirmed means the attempt found a claim left by an attempt that
	// never recorded its result, with a cancel requested. no_op means
	// nothing was handed to a notifier.
	OutcomeSent        Outcome = "sent"
	OutcomeDiscarded   Outcome = "discarded"
	OutcomeCancelled   Outcome = "cancelled"
	OutcomeUnconfirmed Outcome = "unconfirmed"
	OutcomeNoOp        Outcome = "no_op"
	// OutcomeDeferred: the message waits for its rate limit, without an
	// attempt counted; the reason says whose limit.
	OutcomeDeferred Outcome = "deferred"
)

// ErrorType is the error.type of a span that failed for reason r with err:
// r itself, so that the span and the metric name a failure alike, except for
// ReasonDatabaseError, an error the library does not know, which is named by
// the Go type of its innermost error (e.g. *pgconn.PgError): a
// low-cardinality name, as OpenTelemetry's semantic conventions advise.
func ErrorType(r Reason, err error) string {
	if r != ReasonDatabaseError || err == nil {
		return string(r)
	}
	for next := errors.Unwrap(err); next != nil; next = errors.Unwrap(err) {
		err = next
	}
	return fmt.Sprintf("%T", err)
}

// FinalEventReason is the event reason of a delivery attempt that ended its
// message in status with metric reason r: the one table from the metrics'
// vocabulary to the events'. The Notifier's own answers keep their name; a
// failure on the last attempt is attempts_exhausted, whatever the failure;
// a failure after CancelEnvelope asked for the message is cancel_envelope
// (only CancelEnvelope cancels a message in flight); and a claim left by an
// attempt that never recorded its result is result_unrecorded. Reconcile's
// and the cancels' event reasons name what they found or did, and have no
// attempt's metric.
func FinalEventReason(status outboundtype.MessageStatus, r Reason) outboundtype.EventReason {
	switch {
	case status == outboundtype.MessageStatusSent:
		return outboundtype.EventReason(r)
	case status == outboundtype.MessageStatusCancelled:
		return outboundtype.EventReasonCancelEnvelope
	case status == outboundtype.MessageStatusUnconfirmed:
		return outboundtype.EventReasonResultUnrecorded
	case r == ReasonNotifierPermanentError:
		return outboundtype.EventReason(r)
	}
	return outboundtype.EventReasonAttemptsExhausted
}
