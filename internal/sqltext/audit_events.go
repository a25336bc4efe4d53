package sqltext

import "strings"

// AuditEvents are the statements of the audit_events table.
type AuditEvents struct {
	// InsertAuditEvent stores one audit event. $1 id, $2 action, $3 actor or
	// NULL, $4 metadata as JSON text, $5 occurred_at. The metadata goes as
	// text, which every pgx query mode can send: one that does not ask the
	// server for parameter types (QueryExecModeExec, used behind PgBouncer)
	// cannot tell a map's SQL type.
	InsertAuditEvent string

	// ListAuditEvents reads audit events newest first. $1 action or NULL for
	// all, $2 limit.
	ListAuditEvents string

	// TransactionTime reads the transaction's time, which the rows it
	// writes keep: the time of an event audited inside it.
	TransactionTime string

	// PruneAuditEvents deletes up to $2 of the oldest audit events that
	// occurred before $1.
	PruneAuditEvents string
}

// newAuditEvents fills AuditEvents with r, which replaces the placeholders of New.
func newAuditEvents(r *strings.Replacer) AuditEvents {
	return AuditEvents{
		InsertAuditEvent: r.Replace(`
INSERT INTO {s}.audit_events (id, action, actor, metadata, occurred_at) VALUES ($1, $2, $3, $4::text::jsonb, $5)`),

		TransactionTime: `SELECT now()`,

		ListAuditEvents: r.Replace(`
SELECT id, action, actor, metadata, occurred_at FROM {s}.audit_events
WHERE $1::text IS NULL OR action = $1
ORDER BY occurred_at DESC, id DESC
LIMIT $2`),

		PruneAuditEvents: r.Replace(`
DELETE FROM {s}.audit_events
WHERE id = ANY (ARRAY(
	SELECT id FROM {s}.audit_events
	WHERE occurred_at < $1
	ORDER BY occurred_at
	LIMIT $2))`),
	}
}
