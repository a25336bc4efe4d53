package outbound

import (
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
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
	// RateLimitedUntil is when a pending or failed message held back by its
	// rate limit (Config.RateLimits), or by a Notifier's RateLimited, is
	// booked to be tried again; zero when it is not waiting for one.
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

// scanMessage scans one row of sqltext.MessageColumns, or of one of its
// forms without the whole content, followed by the columns extra scans
// into, if any.
func scanMessage(row pgx.Row, extra ...any) (*Message, error) {
	var (
		m         Message
		content   pgtype.Text
		status    string
		envelope  *uuid.UUID
		jobID     *int64
		lastError *string
		sentAt    *time.Time
		// rateWaitUntil is NULL unless the message waits for its limit; a
		// pgtype value scans without an allocation.
		rateWaitUntil pgtype.Timestamptz
		cancelledBy   pgtype.Text
		cancelledAt   pgtype.Timestamptz
		rendered      pgtype.Bool
		data          []byte
	)
	dest := append([]any{&m.ID, &m.ConversationID, &m.Role, &m.TemplateID, &content, &status, &envelope,
		&m.Metadata, &jobID, &m.ScheduledAt, &m.Attempts, &lastError, &sentAt, &m.CreatedAt, &m.UpdatedAt, &rateWaitUntil,
		&cancelledBy, &cancelledAt, &data, &rendered, &m.ContentBytes}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	m.Data = decodeData(data)
	m.Content, m.Status = content.String, MessageStatus(status)
	m.CancelledBy, m.CancelledAt, m.Rendered = cancelledBy.String, cancelledAt.Time, rendered.Bool
	if envelope != nil {
		m.BulkEnvelopeID = *envelope
	}
	if jobID != nil {
		m.JobID = *jobID
	}
	if lastError != nil {
		m.LastError = *lastError
	}
	if sentAt != nil {
		m.SentAt = *sentAt
	}
	if rateWaitUntil.Valid && slices.Contains(undeliveredStatuses, m.Status) {
		m.RateLimitedUntil = rateWaitUntil.Time
	}
	return &m, nil
}
