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
	Content    string
	Status     MessageStatus
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
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// scanMessage scans one row of sqltext.MessageColumns, followed by the
// columns extra scans into, if any.
func scanMessage(row pgx.Row, extra ...any) (*Message, error) {
	var (
		m         Message
		status    string
		envelope  *uuid.UUID
		jobID     *int64
		lastError *string
		sentAt    *time.Time
		// rateWaitUntil is NULL unless the message waits for its limit; a
		// pgtype value scans without an allocation.
		rateWaitUntil pgtype.Timestamptz
	)
	dest := append([]any{&m.ID, &m.ConversationID, &m.Role, &m.TemplateID, &m.Content, &status, &envelope,
		&m.Metadata, &jobID, &m.ScheduledAt, &m.Attempts, &lastError, &sentAt, &m.CreatedAt, &m.UpdatedAt, &rateWaitUntil}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	m.Status = MessageStatus(status)
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
