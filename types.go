package outbound

import (
	"time"

	"github.com/cairnloop/outbound/outboundtype"
)

// RoleSystemOutbound is the role of every message the library writes.
const RoleSystemOutbound = outboundtype.RoleSystemOutbound

// Message is one outbound message row.
type Message = outboundtype.Message

// MessageStatus is where a message is in its delivery lifecycle.
type MessageStatus = outboundtype.MessageStatus

// Message statuses: see outboundtype for each one's meaning.
const (
	MessageStatusPending     = outboundtype.MessageStatusPending
	MessageStatusDelivering  = outboundtype.MessageStatusDelivering
	MessageStatusSent        = outboundtype.MessageStatusSent
	MessageStatusFailed      = outboundtype.MessageStatusFailed
	MessageStatusUnconfirmed = outboundtype.MessageStatusUnconfirmed
	MessageStatusDiscarded   = outboundtype.MessageStatusDiscarded
	MessageStatusCancelled   = outboundtype.MessageStatusCancelled
)

// Envelope is the durable record of one BulkTrigger call, submitted or
// refused.
type Envelope = outboundtype.Envelope

// EnvelopeStatus is the state of a bulk envelope.
type EnvelopeStatus = outboundtype.EnvelopeStatus

// Envelope statuses: see outboundtype for each one's meaning.
const (
	EnvelopeStatusSubmitted          = outboundtype.EnvelopeStatusSubmitted
	EnvelopeStatusRefusedCapExceeded = outboundtype.EnvelopeStatusRefusedCapExceeded
	EnvelopeStatusCancelled          = outboundtype.EnvelopeStatusCancelled
)

// EnvelopeOutcome is how an envelope's bulk went, derived from its
// messages' statuses when the envelope is read.
type EnvelopeOutcome = outboundtype.EnvelopeOutcome

// Envelope outcomes: see outboundtype for each one's meaning.
const (
	EnvelopeOutcomeInProgress            = outboundtype.EnvelopeOutcomeInProgress
	EnvelopeOutcomeCompleted             = outboundtype.EnvelopeOutcomeCompleted
	EnvelopeOutcomeCompletedWithFailures = outboundtype.EnvelopeOutcomeCompletedWithFailures
	EnvelopeOutcomeCancelled             = outboundtype.EnvelopeOutcomeCancelled
	EnvelopeOutcomePartlyCancelled       = outboundtype.EnvelopeOutcomePartlyCancelled
	EnvelopeOutcomeRefused               = outboundtype.EnvelopeOutcomeRefused
)

// Progress counts one envelope's messages by status.
type Progress = outboundtype.Progress

// Event is a message's final outcome, as Subscribe reports it.
type Event = outboundtype.Event

// EventKind is the kind of a message's final outcome.
type EventKind = outboundtype.EventKind

// Event kinds, one per final status: see outboundtype for each one's
// meaning.
const (
	EventKindMessageSent        = outboundtype.EventKindMessageSent
	EventKindMessageDiscarded   = outboundtype.EventKindMessageDiscarded
	EventKindMessageCancelled   = outboundtype.EventKindMessageCancelled
	EventKindMessageUnconfirmed = outboundtype.EventKindMessageUnconfirmed
)

// EventReason says why a message reached its final outcome.
type EventReason = outboundtype.EventReason

// Event reasons, each of one kind: see outboundtype for each one's meaning.
const (
	EventReasonNotifierOK        = outboundtype.EventReasonNotifierOK
	EventReasonNoNotifier        = outboundtype.EventReasonNoNotifier
	EventReasonPermanentError    = outboundtype.EventReasonPermanentError
	EventReasonAttemptsExhausted = outboundtype.EventReasonAttemptsExhausted
	EventReasonJobDiscarded      = outboundtype.EventReasonJobDiscarded
	EventReasonJobDeleted        = outboundtype.EventReasonJobDeleted
	EventReasonCancelMessage     = outboundtype.EventReasonCancelMessage
	EventReasonCancelEnvelope    = outboundtype.EventReasonCancelEnvelope
	EventReasonJobCancelled      = outboundtype.EventReasonJobCancelled
	EventReasonResultUnrecorded  = outboundtype.EventReasonResultUnrecorded
)

// The library's errors: see outboundtype for when each is returned.
var (
	ErrInvalidArgument     = outboundtype.ErrInvalidArgument
	ErrBatchTooLarge       = outboundtype.ErrBatchTooLarge
	ErrIdempotencyConflict = outboundtype.ErrIdempotencyConflict
	ErrNotFound            = outboundtype.ErrNotFound
	ErrSchemaMismatch      = outboundtype.ErrSchemaMismatch
	ErrNotCancellable      = outboundtype.ErrNotCancellable
)

// BatchTooLargeError is returned by BulkTrigger when a bulk exceeds the cap.
type BatchTooLargeError = outboundtype.BatchTooLargeError

// InvalidArgumentError is the error behind every ErrInvalidArgument: which
// argument was wrong and why.
type InvalidArgumentError = outboundtype.InvalidArgumentError

// Notifier delivers outbound messages by email, SMS, chat or whatever the
// host chooses.
type Notifier = outboundtype.Notifier

// NotifierFunc adapts a function to the Notifier interface.
type NotifierFunc = outboundtype.NotifierFunc

// Permanent marks a Notifier's error as one that no retry can mend: the
// message is discarded after this call. See outboundtype.Permanent.
func Permanent(err error) error { return outboundtype.Permanent(err) }

// PermanentError is the error Permanent returns.
type PermanentError = outboundtype.PermanentError

// RetryAfter asks for the next attempt to come no sooner than d from now.
// The attempt counts; for a provider's 429, return RateLimited instead. See
// outboundtype.RetryAfter.
func RetryAfter(d time.Duration, err error) error { return outboundtype.RetryAfter(d, err) }

// RetryAfterError is the error RetryAfter returns.
type RetryAfterError = outboundtype.RetryAfterError

// RateLimited tells the library that the provider refused a call for its
// rate, and pauses the message's rate limit key for d in every process,
// without counting an attempt. See outboundtype.RateLimited.
func RateLimited(d time.Duration, err error) error { return outboundtype.RateLimited(d, err) }

// RateLimitedError is the error RateLimited returns.
type RateLimitedError = outboundtype.RateLimitedError

// RateLimit limits how fast Notifier calls start for the messages of one key
// (Config.RateLimits), counted across every process.
type RateLimit = outboundtype.RateLimit

// Auditor records who triggered what, inside the trigger's transaction.
type Auditor = outboundtype.Auditor

// AuditorFunc adapts a function to the Auditor interface.
type AuditorFunc = outboundtype.AuditorFunc

// NoopAuditor discards every event. It is the default Auditor.
type NoopAuditor = outboundtype.NoopAuditor

// AuditEvent is one audited action.
type AuditEvent = outboundtype.AuditEvent

// Audit actions, one per kind of event the library emits: see outboundtype
// for each one's metadata.
const (
	AuditActionTrigger     = outboundtype.AuditActionTrigger
	AuditActionBulkTrigger = outboundtype.AuditActionBulkTrigger
	AuditActionBulkRefused = outboundtype.AuditActionBulkRefused
	AuditActionCancel      = outboundtype.AuditActionCancel
)

// DeliveryArgs are the River job args of a message's delivery job.
type DeliveryArgs = outboundtype.DeliveryArgs

// ReconcileArgs are the (empty) args of the periodic reconcile job.
type ReconcileArgs = outboundtype.ReconcileArgs

// PruneArgs are the (empty) args of the periodic prune job.
type PruneArgs = outboundtype.PruneArgs

// River job kinds of the library's jobs.
const (
	DeliveryJobKind  = outboundtype.DeliveryJobKind
	ReconcileJobKind = outboundtype.ReconcileJobKind
	PruneJobKind     = outboundtype.PruneJobKind
)
