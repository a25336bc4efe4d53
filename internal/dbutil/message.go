package dbutil

import (
	"slices"
	"time"

	"github.com/cairnloop/outbound/internal/hostdata"
	"github.com/cairnloop/outbound/outboundtype"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// ScanMessage scans one row of sqltext.MessageColumns, or of one of its
// forms without the whole content, followed by the columns extra scans
// into, if any.
func ScanMessage(row pgx.Row, extra ...any) (*outboundtype.Message, error) {
	var (
		m         outboundtype.Message
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
	m.Data = hostdata.Decode(data)
	m.Content, m.Status = content.String, outboundtype.MessageStatus(status)
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
	if rateWaitUntil.Valid && slices.Contains(UndeliveredStatuses, m.Status) {
		m.RateLimitedUntil = rateWaitUntil.Time
	}
	return &m, nil
}
