package outboundtype

import (
	"errors"
	"fmt"

	"github.com/google/uuid"
)

var (
	// ErrInvalidArgument is returned for bad input: a missing template id, a
	// repeated conversation id, a malformed schema name and the like. The
	// error is an *InvalidArgumentError, whose message names the field.
	// Nothing is written.
	ErrInvalidArgument = errors.New("outbound: invalid argument")

	// ErrBatchTooLarge is returned by BulkTrigger when the number of
	// recipients exceeds the cap. Use errors.As with *BatchTooLargeError for
	// the count, the cap and the id of the refused envelope.
	ErrBatchTooLarge = errors.New("outbound: batch too large")

	// ErrIdempotencyConflict is returned when a BulkTriggerOpts.EnvelopeID is
	// reused for a request with a different template, body, recipients,
	// actor or schedule. The message names the first that differs.
	ErrIdempotencyConflict = errors.New("outbound: envelope id reused for a different request")

	// ErrNotFound is returned when a message or envelope does not exist.
	ErrNotFound = errors.New("outbound: not found")

	// ErrSchemaMismatch is returned when the database's schema is not the
	// one this version of the library needs: never migrated, migrated by an
	// older version (run Migrate), or by a newer one (upgrade the library);
	// and by Reconcile when Migrate recorded another River schema than
	// Config.RiverSchema. The message says which, and what to do.
	ErrSchemaMismatch = errors.New("outbound: schema mismatch")

	// ErrNotCancellable is returned when cancelling what is past cancelling:
	// a message in flight (a delivery is in progress), sent, unconfirmed or
	// discarded, or an envelope that was refused.
	ErrNotCancellable = errors.New("outbound: not cancellable")
)

// BatchTooLargeError is returned by BulkTrigger when a bulk exceeds the cap.
// It matches ErrBatchTooLarge with errors.Is.
type BatchTooLargeError struct {
	// Count is the number of recipients requested.
	Count int
	// Cap is the cap in force for the request.
	Cap int
	// EnvelopeID is the id of the durable refused envelope, or uuid.Nil when
	// the refusal could not be recorded.
	EnvelopeID uuid.UUID
	// Replayed is true when BulkTriggerOpts.EnvelopeID named an envelope
	// refused earlier: the call replays that refusal, with the count and
	// the cap of then, whatever the cap is now. Submitting the bulk needs a
	// new envelope id.
	Replayed bool
}

// Error implements error.
func (e *BatchTooLargeError) Error() string {
	if e.Replayed {
		return fmt.Sprintf("outbound: envelope %s was refused when first requested (batch size %d exceeded cap %d), and this call replays that refusal whatever the cap is now; to submit the bulk, use a new envelope id",
			e.EnvelopeID, e.Count, e.Cap)
	}
	if e.EnvelopeID == uuid.Nil {
		return fmt.Sprintf("outbound: batch size %d exceeds cap %d (the refusal could not be recorded); split the bulk or raise MaxBatchSize", e.Count, e.Cap)
	}
	return fmt.Sprintf("outbound: batch size %d exceeds cap %d (refused envelope %s); split the bulk or raise MaxBatchSize", e.Count, e.Cap, e.EnvelopeID)
}

// Is makes errors.Is(err, ErrBatchTooLarge) true.
func (e *BatchTooLargeError) Is(target error) bool { return target == ErrBatchTooLarge }

// InvalidArgumentError is the error behind every ErrInvalidArgument: which
// argument was wrong and why. It matches ErrInvalidArgument with errors.Is;
// errors.As gives the field, for instance so that an HTTP handler can name the
// request field that carried it rather than the Go option.
type InvalidArgumentError struct {
	// Field is the Go name of what was wrong: a parameter such as
	// "conversationIDs", or an option such as "TriggerOpts.TemplateID".
	Field string
	// Reason says what is wrong with it, such as "is required". It never
	// repeats a body or an actor.
	Reason string
}

// Error implements error.
func (e *InvalidArgumentError) Error() string {
	return fmt.Sprintf("%s: %s %s", ErrInvalidArgument, e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidArgument) true.
func (e *InvalidArgumentError) Is(target error) bool { return target == ErrInvalidArgument }
