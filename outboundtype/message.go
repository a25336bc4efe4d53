package outboundtype

import (
	"time"

	"github.com/google/uuid"
)

// RoleSystemOutbound is the role of every message the library writes.
const RoleSystemOutbound = "system_outbound"

// Message is one outbound message row.
type Message struct {
	ID             uuid.UUID
	ConversationID int64
	// Role is always RoleSystemOutbound.
	Role       string
	TemplateID string
	// Content is the message's body: the body the caller rendered when
	// Rendered is true; otherwise the original library's template
	// reference, "Outbound message using template: <TemplateID>", kept for
	// its consumers, which no customer should receive. Reads that list
	// messages leave it empty unless asked for it
	// (ListMessagesParams.IncludeContent), and MessagePreview reads only its
	// start; ContentBytes is its whole length.
	Content string
	// Rendered reports whether Content is a body the caller rendered and
	// passed (TriggerOpts.Content, a bulk's bodies). When false, the message
	// was triggered without a body, and the Notifier renders it from
	// TemplateID (and Data).
	Rendered bool
	// ContentBytes is the length of the whole Content in bytes, filled in by
	// every read, including those that do not read Content.
	ContentBytes int
	Status       MessageStatus
	// BulkEnvelopeID is uuid.Nil for a message triggered without one.
	BulkEnvelopeID uuid.UUID
	// Metadata keeps the keys "template_id", "status" and "bulk_envelope_id"
	// for consumers ported from the original library.
	Metadata    map[string]any
	JobID       int64
	ScheduledAt time.Time
	Attempts    int
	LastError   string
	// SentAt is zero until the message is sent.
	SentAt time.Time
	// RateLimitedUntil is set while a pending or failed message is held
	// back by its rate limit (Config.RateLimits), or by a Notifier's
	// RateLimited: when it was expected to be tried again, as it last
	// waited, by its place, its key's next free slot or the key's pause.
	// It is an estimate, not a booking: a more urgent message may go
	// first, and a slot freed early goes to it sooner. Zero when it is not
	// waiting for one.
	RateLimitedUntil time.Time
	// Data is the host's data for the message, as given to TriggerOpts.Data
	// or a bulk's data: a JSON object, decoded as encoding/json decodes into
	// a map (numbers are float64). Nil for none. It is never in telemetry.
	//
	// Every read gives it back as written: a trigger refuses data that would
	// not (a number float64 cannot hold exactly, nesting deeper than
	// MaxDataDepth, invalid UTF-8). Data stored before that check may hold
	// such a number, which reads as a json.Number of its text, and may nest
	// deeper, which reads in full; no read fails on it.
	Data map[string]any
	// CancelledBy is the Actor of the cancel that ended the message
	// cancelled (CancelOpts.Actor), empty for a cancel without one;
	// CancelledAt is when, zero unless the message is cancelled.
	CancelledBy string
	CancelledAt time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// MessageStatus is where a message is in its delivery lifecycle.
type MessageStatus string

// Message statuses. Pending, delivering and failed messages hold their dedup
// key until they are final; sent and unconfirmed ones hold it for
// Config.DedupWindow; discarded and cancelled ones free it.
const (
	// MessageStatusPending: waiting for its first attempt.
	MessageStatusPending MessageStatus = "pending"
	// MessageStatusDelivering: an attempt has claimed the message and is
	// calling the Notifier. It cannot be cancelled until the attempt ends.
	MessageStatusDelivering MessageStatus = "delivering"
	// MessageStatusSent: the Notifier returned nil.
	MessageStatusSent MessageStatus = "sent"
	// MessageStatusFailed: the last attempt failed; River tries again.
	MessageStatusFailed MessageStatus = "failed"
	// MessageStatusUnconfirmed: an attempt claimed the message and never
	// recorded a result (its worker died, or lost the database, on the last
	// attempt), and no attempt is left: the Notifier may have delivered it.
	// It is final and keeps its dedup key, as sent does; ask the provider,
	// by message id, whether it arrived. LastError says what happened.
	MessageStatusUnconfirmed MessageStatus = "unconfirmed"
	// MessageStatusDiscarded: every attempt failed, or the Notifier said
	// the failure is permanent.
	MessageStatusDiscarded MessageStatus = "discarded"
	// MessageStatusCancelled: cancelled before delivery; the Notifier will
	// not be called for it.
	MessageStatusCancelled MessageStatus = "cancelled"
)
