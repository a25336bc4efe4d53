package outboundtype

import (
	"time"

	"github.com/google/uuid"
)

// EventKind is the kind of a message's final outcome, as Subscribe reports
// it.
type EventKind string

// Event kinds: one per final status.
const (
	// EventKindMessageSent: the Notifier accepted the message, or, with no
	// Notifier configured, it was marked sent.
	EventKindMessageSent EventKind = "message_sent"
	// EventKindMessageDiscarded: delivery gave up. The Notifier said the
	// failure is permanent, the last attempt failed, or the River job ended
	// without recording a result.
	EventKindMessageDiscarded EventKind = "message_discarded"
	// EventKindMessageCancelled: the message was cancelled before it was
	// delivered.
	EventKindMessageCancelled EventKind = "message_cancelled"
	// EventKindMessageUnconfirmed: an attempt called, or was about to call,
	// the Notifier and never recorded the result, so the message may have
	// been delivered; it is not attempted again.
	EventKindMessageUnconfirmed EventKind = "message_unconfirmed"
)

// EventReason says why a message reached its final outcome. Where the
// reason is the Notifier's own answer (notifier_ok, no_notifier_configured,
// notifier_permanent_error), it is the same string as the reason attribute
// of the attempt's metrics; the library's README has the whole table.
type EventReason string

// Event reasons. Each belongs to one kind.
const (
	// EventReasonNotifierOK (sent): the Notifier returned nil.
	EventReasonNotifierOK EventReason = "notifier_ok"
	// EventReasonNoNotifier (sent): no Notifier is configured, so the
	// message was marked sent without being handed to anyone.
	EventReasonNoNotifier EventReason = "no_notifier_configured"

	// EventReasonPermanentError (discarded): the Notifier returned
	// Permanent(err). It is named as the metrics name that answer.
	EventReasonPermanentError EventReason = "notifier_permanent_error"
	// EventReasonAttemptsExhausted (discarded): the last of the message's
	// MaxAttempts failed. LastError says how.
	EventReasonAttemptsExhausted EventReason = "attempts_exhausted"
	// EventReasonJobDiscarded (discarded): Reconcile found the River job
	// discarded without a recorded result, as by River's UI.
	EventReasonJobDiscarded EventReason = "job_discarded"
	// EventReasonJobDeleted (discarded): Reconcile found the River job
	// gone.
	EventReasonJobDeleted EventReason = "job_deleted"

	// EventReasonCancelMessage (cancelled): CancelMessage cancelled it.
	EventReasonCancelMessage EventReason = "cancel_message"
	// EventReasonCancelEnvelope (cancelled): CancelEnvelope cancelled it,
	// before its delivery or after an attempt in flight then failed.
	EventReasonCancelEnvelope EventReason = "cancel_envelope"
	// EventReasonJobCancelled (cancelled): Reconcile found the River job
	// cancelled, as by River's UI.
	EventReasonJobCancelled EventReason = "job_cancelled"

	// EventReasonResultUnrecorded (unconfirmed): the attempt that claimed
	// the message never recorded its result.
	EventReasonResultUnrecorded EventReason = "result_unrecorded"
)

// Event is a message's final outcome, as Subscribe reports it.
type Event struct {
	Kind   EventKind
	Reason EventReason

	MessageID      uuid.UUID
	ConversationID int64
	TemplateID     string
	// BulkEnvelopeID is uuid.Nil for a message triggered without one.
	BulkEnvelopeID uuid.UUID

	// Attempts is the number of delivery attempts made; 0 for a message
	// cancelled before its first.
	Attempts int
	// LastError is the message's last_error as recorded with the outcome:
	// empty for a sent message.
	LastError string
	// OccurredAt is when this process recorded the outcome, by its clock.
	OccurredAt time.Time
}
