package outbound

import (
	"context"
	"errors"
	"fmt"
)

// reason is the one name of why a call or a delivery attempt ended as it
// did: with outcome, the only attribute of the library's metrics; the
// outbound.reason attribute of its spans; and, for a failure, the span's
// error.type (see errorType). Each failure is named once, here.
type reason string

const (
	reasonNotifierOK            reason = "notifier_ok"
	reasonNotifierReturnedError reason = "notifier_returned_error"
	reasonNotifierTimeout       reason = "notifier_timeout"
	reasonNotifierPanicked      reason = "notifier_panicked"
	// reasonNotifierPermanentError: the notifier returned Permanent(err).
	reasonNotifierPermanentError reason = "notifier_permanent_error"
	// reasonNotifierRetryAfter: the notifier returned RetryAfter(d, err),
	// a failed attempt that counts.
	reasonNotifierRetryAfter reason = "notifier_retry_after"
	// reasonNotifierRateLimited: the notifier returned RateLimited(d, err):
	// the key is paused for d, and the attempt is not counted (outcome
	// deferred).
	reasonNotifierRateLimited reason = "notifier_rate_limited"
	// reasonRateLimitWait: the message's rate limit held it back before
	// its Notifier was called, and booked it a slot (outcome deferred).
	reasonRateLimitWait        reason = "rate_limit_wait"
	reasonNoNotifierConfigured reason = "no_notifier_configured"
	reasonCancelled            reason = "cancelled"
	// reasonWorkerStopped: the worker was stopped while the notifier ran.
	reasonWorkerStopped reason = "worker_stopped"
	// reasonAlreadyFinal: the job ran again for a message already sent or
	// discarded, e.g. retried by hand; nothing was delivered.
	reasonAlreadyFinal reason = "already_final"
	// reasonMessageNotFound: the message row was deleted; the job is
	// cancelled.
	reasonMessageNotFound reason = "message_not_found"
	// reasonDatabaseError: the attempt could not claim its message or record
	// the notifier's result, so it counts as failed and River tries again.
	reasonDatabaseError reason = "database_error"
	// reasonClaimedElsewhere: another attempt holds the message's claim, so
	// this one waits for the claim to run out.
	reasonClaimedElsewhere reason = "claimed_elsewhere"
	// reasonClaimLost: another attempt took the claim over before this one
	// recorded its result.
	reasonClaimLost reason = "claim_lost"
)

// Reasons of a failed trigger or bulk trigger: the reason attribute of
// outcome failed, on outbound.trigger.messages and the duration
// histograms. A failure that is
// none of the others is reasonDatabaseError.
const (
	reasonInvalidArgument     reason = "invalid_argument"
	reasonSchemaMismatch      reason = "schema_mismatch"
	reasonAuditorError        reason = "auditor_error"
	reasonIdempotencyConflict reason = "idempotency_conflict"
	// reasonContextDone: the caller's context was cancelled or ran out.
	reasonContextDone reason = "context_done"
	// reasonBatchTooLarge: a bulk over the cap, refused (outcome
	// refused_cap_exceeded, or its _audit_failed form).
	reasonBatchTooLarge reason = "batch_too_large"
	// reasonNotFound and reasonNotCancellable are the failures of calls
	// that name a message or an envelope.
	reasonNotFound       reason = "not_found"
	reasonNotCancellable reason = "not_cancellable"
)

// reasonOf names the failure of a call that returned err, by the library's
// own errors. Any other error is the database's: reasonDatabaseError, whose
// span names the error's Go type (errorType).
func reasonOf(err error) reason {
	var audit *auditorError
	switch {
	case errors.Is(err, ErrInvalidArgument):
		return reasonInvalidArgument
	case errors.Is(err, ErrSchemaMismatch):
		return reasonSchemaMismatch
	case errors.Is(err, ErrBatchTooLarge):
		return reasonBatchTooLarge
	case errors.Is(err, ErrIdempotencyConflict):
		return reasonIdempotencyConflict
	case errors.Is(err, ErrNotFound):
		return reasonNotFound
	case errors.Is(err, ErrNotCancellable):
		return reasonNotCancellable
	case errors.As(err, &audit):
		return reasonAuditorError
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return reasonContextDone
	}
	return reasonDatabaseError
}

// errorType is the error.type of a span that failed for reason r with err:
// r itself, so that the span and the metric name a failure alike, except for
// reasonDatabaseError, an error the library does not know, which is named by
// the Go type of its innermost error (e.g. *pgconn.PgError): a
// low-cardinality name, as OpenTelemetry's semantic conventions advise.
func errorType(r reason, err error) string {
	if r != reasonDatabaseError || err == nil {
		return string(r)
	}
	for next := errors.Unwrap(err); next != nil; next = errors.Unwrap(err) {
		err = next
	}
	return fmt.Sprintf("%T", err)
}
