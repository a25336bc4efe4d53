package outboundtype

import (
	"time"

	"github.com/google/uuid"
)

// EnvelopeStatus is the state of a bulk envelope.
type EnvelopeStatus string

// Envelope statuses.
const (
	// EnvelopeStatusSubmitted: the envelope's messages and jobs were written.
	EnvelopeStatusSubmitted EnvelopeStatus = "submitted"
	// EnvelopeStatusRefusedCapExceeded: the bulk was over the cap; only the
	// envelope was written, as a durable record of the refusal.
	EnvelopeStatusRefusedCapExceeded EnvelopeStatus = "refused_cap_exceeded"
	// EnvelopeStatusCancelled: every recipient of the envelope was cancelled.
	EnvelopeStatusCancelled EnvelopeStatus = "cancelled"
)

// EnvelopeOutcome is how an envelope's bulk went, derived from its
// messages' statuses when the envelope is read.
type EnvelopeOutcome string

// Envelope outcomes.
const (
	// EnvelopeOutcomeInProgress: some message still awaits a result
	// (pending, delivering, or failed awaiting a retry).
	EnvelopeOutcomeInProgress EnvelopeOutcome = "in_progress"
	// EnvelopeOutcomeCompleted: every message was sent.
	EnvelopeOutcomeCompleted EnvelopeOutcome = "completed"
	// EnvelopeOutcomeCompletedWithFailures: every message is final, none was
	// cancelled, and some were not sent (discarded or unconfirmed).
	EnvelopeOutcomeCompletedWithFailures EnvelopeOutcome = "completed_with_failures"
	// EnvelopeOutcomeCancelled: every message was cancelled.
	EnvelopeOutcomeCancelled EnvelopeOutcome = "cancelled"
	// EnvelopeOutcomePartlyCancelled: every message is final, some were
	// cancelled and some were not: sent before the cancel, or ended by
	// their own permanent failure.
	EnvelopeOutcomePartlyCancelled EnvelopeOutcome = "partly_cancelled"
	// EnvelopeOutcomeRefused: the bulk was refused; it has no messages.
	EnvelopeOutcomeRefused EnvelopeOutcome = "refused"
)

// Envelope is the durable record of one BulkTrigger call, submitted or
// refused.
type Envelope struct {
	ID         uuid.UUID
	TemplateID string
	// RenderedBody is the bulk's body. ListEnvelopes leaves it empty unless
	// asked for it (ListEnvelopesParams.IncludeBody), and EnvelopePreview
	// reads only its start; RenderedBodyBytes is its whole length.
	RenderedBody string
	// RenderedBodyBytes is the length of the whole RenderedBody in bytes,
	// filled in by every read.
	RenderedBodyBytes int
	// Data is the host data every recipient shares (BulkTriggerOpts.Data),
	// nil for none; each message's Data holds it merged with the
	// recipient's own. It reads as Message.Data does.
	Data map[string]any
	// RecipientConversationIDs are the requested conversations in the
	// caller's order. A refused envelope keeps only the first
	// MaxRefusedRecipientsKept (1,000); Count says how many were asked for.
	RecipientConversationIDs []int64
	// Count is the number of conversations requested.
	Count int
	// EffectiveCap is the cap in force when the envelope was written.
	EffectiveCap int
	RequestedBy  string
	RequestedAt  time.Time
	Status       EnvelopeStatus
	// RefusedReason says why a refused envelope was refused, e.g.
	// "batch_size 26 exceeds cap 25".
	RefusedReason string
	// Outcome is how the bulk went, derived from its messages when the
	// envelope was read; Status says only what was done to the envelope.
	Outcome EnvelopeOutcome
	// CancelledBy is the Actor of the envelope's first CancelEnvelope, or of
	// the cancel of its last message left; CancelledAt is when, zero when
	// no cancel has touched the envelope. CancelledBy is empty for a cancel
	// without an Actor.
	CancelledBy string
	CancelledAt time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Progress counts one envelope's messages by status.
type Progress struct {
	Pending     int
	Delivering  int
	Sent        int
	Failed      int
	Unconfirmed int
	Discarded   int
	Cancelled   int
}

// Total is the number of the envelope's messages.
func (p *Progress) Total() int {
	return p.Pending + p.Delivering + p.Sent + p.Failed + p.Unconfirmed + p.Discarded + p.Cancelled
}
