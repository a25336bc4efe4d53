package outboundtype

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Audit actions, one per kind of event the library emits.
const (
	// AuditActionTrigger is emitted by Trigger and TriggerTx with metadata
	// keys conversation_id and template_id.
	AuditActionTrigger = "outbound_trigger"

	// AuditActionBulkTrigger is emitted by BulkTrigger for a submitted
	// envelope with metadata keys bulk_envelope_id, count and template_id.
	AuditActionBulkTrigger = "bulk_outbound_trigger"

	// AuditActionBulkRefused is emitted by BulkTrigger for a refused envelope
	// with metadata keys bulk_envelope_id, count, effective_cap and
	// template_id.
	AuditActionBulkRefused = "bulk_outbound_refused"

	// AuditActionCancel is emitted inside the cancel's transaction by
	// CancelMessage and CancelMessageTx when they cancel the message, with
	// metadata keys message_id, conversation_id and template_id, and
	// bulk_envelope_id when the message has one; and by every CancelEnvelope and
	// CancelEnvelopeTx that succeeds, with bulk_envelope_id, template_id and
	// count, the number of messages it cancelled, which is 0 when it found only
	// messages in flight (whose cancel it asked for) or none left.
	AuditActionCancel = "outbound_cancel"
)

// Auditor records who triggered what. Audit runs inside the trigger's
// transaction: an event stored through tx commits or rolls back with the
// messages, and a returned error rolls the whole call back.
type Auditor interface {
	Audit(ctx context.Context, tx pgx.Tx, event AuditEvent) error
}

// AuditEvent is one audited action. Metadata holds ids and counts only, never
// a message body.
type AuditEvent struct {
	Action     string
	Actor      string
	Metadata   map[string]any
	OccurredAt time.Time
}

// NoopAuditor discards every event. It is the default Auditor.
type NoopAuditor struct{}

// Audit implements Auditor and does nothing.
func (NoopAuditor) Audit(context.Context, pgx.Tx, AuditEvent) error { return nil }

// AuditorFunc adapts a function to the Auditor interface.
type AuditorFunc func(ctx context.Context, tx pgx.Tx, event AuditEvent) error

// Audit implements Auditor by calling f.
func (f AuditorFunc) Audit(ctx context.Context, tx pgx.Tx, event AuditEvent) error {
	return f(ctx, tx, event)
}
