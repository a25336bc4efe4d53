package outbound

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cairnloop/outbound/internal/dbutil"
	"github.com/cairnloop/outbound/internal/sqltext"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TableAuditor stores events in the audit_events table that Migrate creates
// in the library's schema, in the trigger's own transaction.
type TableAuditor struct {
	pool    *pgxpool.Pool
	queries *sqltext.Queries
}

// NewTableAuditor returns a TableAuditor writing to schema's audit_events
// table. An empty schema means DefaultSchema. The pool serves ListEvents.
func NewTableAuditor(pool *pgxpool.Pool, schema string) (*TableAuditor, error) {
	if pool == nil {
		return nil, invalidArgument("pool", "must not be nil")
	}
	if schema == "" {
		schema = DefaultSchema
	}
	if err := validateSchemaName("schema", schema); err != nil {
		return nil, err
	}
	return &TableAuditor{pool: pool, queries: sqltext.New(schema, schema)}, nil
}

// Audit implements Auditor by inserting the event through tx.
func (a *TableAuditor) Audit(ctx context.Context, tx pgx.Tx, event AuditEvent) error {
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("outbound: audit event id: %w", err)
	}
	if event.OccurredAt.IsZero() {
		event.OccurredAt = time.Now()
	}
	if event.Metadata == nil {
		event.Metadata = map[string]any{}
	}
	metadata, err := json.Marshal(event.Metadata)
	if err != nil {
		return fmt.Errorf("outbound: encode audit event metadata: %w", err)
	}
	if _, err := tx.Exec(ctx, a.queries.InsertAuditEvent, id, event.Action, dbutil.NullIfEmpty(event.Actor), string(metadata), event.OccurredAt); err != nil {
		return fmt.Errorf("outbound: insert audit event: %w", err)
	}
	return nil
}

// StoredAuditEvent is an AuditEvent as read back from the audit_events table.
type StoredAuditEvent struct {
	ID uuid.UUID
	AuditEvent
}

// ListAuditEventsParams filters ListEvents. A nil value means defaults.
type ListAuditEventsParams struct {
	// Action keeps only events with this action; "" keeps all.
	Action string
	// Limit is the most events returned. Defaults to 50; at most 500.
	Limit int
}

// ListEvents returns stored events, newest first.
func (a *TableAuditor) ListEvents(ctx context.Context, params *ListAuditEventsParams) ([]*StoredAuditEvent, error) {
	if params == nil {
		params = &ListAuditEventsParams{}
	}
	limit, err := listLimit("ListAuditEventsParams.Limit", params.Limit)
	if err != nil {
		return nil, err
	}
	rows, err := a.pool.Query(ctx, a.queries.ListAuditEvents, dbutil.NullIfEmpty(params.Action), limit)
	if err != nil {
		return nil, fmt.Errorf("outbound: list audit events: %w", err)
	}
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*StoredAuditEvent, error) {
		var (
			e     StoredAuditEvent
			actor *string
		)
		if err := row.Scan(&e.ID, &e.Action, &actor, &e.Metadata, &e.OccurredAt); err != nil {
			return nil, err
		}
		if actor != nil {
			e.Actor = *actor
		}
		return &e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbound: list audit events: %w", err)
	}
	return events, nil
}

// auditorError is an error the Auditor returned, kept apart from the
// database's so that a failed trigger's telemetry can say which it was.
type auditorError struct{ err error }

func (e *auditorError) Error() string { return "outbound: auditor: " + e.err.Error() }
func (e *auditorError) Unwrap() error { return e.err }
