package outbound

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/riverqueue/river"
)

// pruneBatchSize bounds the rows one prune statement looks at.
const pruneBatchSize = 1000

// PruneParams says what Prune deletes. At least one field must be set.
type PruneParams struct {
	// OlderThan deletes the messages that are final and were last updated
	// longer ago than this: cancelled and discarded ones, and sent and
	// unconfirmed ones once their dedup window (Config.DedupWindow) has also
	// passed (a negative window, which holds a key for the row's life, does
	// not keep the row from being pruned). It then deletes the envelopes requested longer ago than this
	// whose messages are all gone, and the refused envelopes requested
	// longer ago than this. Messages still awaiting a result are never
	// deleted. Zero leaves messages and envelopes alone.
	OlderThan time.Duration

	// AuditEventsOlderThan deletes the TableAuditor events stored in the
	// library's schema that occurred longer ago than this. Zero leaves them
	// alone.
	AuditEventsOlderThan time.Duration
}

// PruneResult counts what Prune deleted.
type PruneResult struct {
	Messages    int
	Envelopes   int
	AuditEvents int
}

// Prune deletes old rows, in batches of a bounded size, each its own
// statement and transaction, so that it never holds many locks or runs long
// and fits a short statement_timeout. It may be interrupted at any point:
// what it deleted stays deleted, and the next run goes on.
//
// Nothing is pruned unless asked: these rows are conversation history.
// Config.Retention and Config.AuditRetention make Start run Prune every
// hour.
func (c *Client) Prune(ctx context.Context, params *PruneParams) (*PruneResult, error) {
	if params == nil {
		params = &PruneParams{}
	}
	if params.OlderThan < 0 {
		return nil, invalidArgument("PruneParams.OlderThan", "must not be negative, got %s", params.OlderThan)
	}
	if params.AuditEventsOlderThan < 0 {
		return nil, invalidArgument("PruneParams.AuditEventsOlderThan", "must not be negative, got %s", params.AuditEventsOlderThan)
	}
	if params.OlderThan == 0 && params.AuditEventsOlderThan == 0 {
		return nil, invalidArgument("PruneParams", "must set OlderThan or AuditEventsOlderThan")
	}
	if err := c.checkSchema(ctx, c.pool); err != nil {
		return nil, err
	}
	res := &PruneResult{}
	var err error
	if params.OlderThan > 0 {
		cutoff := time.Now().Add(-params.OlderThan)
		if res.Messages, err = c.pruneMessages(ctx, cutoff); err != nil {
			return res, err
		}
		if res.Envelopes, err = c.pruneEnvelopes(ctx, cutoff); err != nil {
			return res, err
		}
	}
	if params.AuditEventsOlderThan > 0 {
		if res.AuditEvents, err = c.pruneAuditEvents(ctx, time.Now().Add(-params.AuditEventsOlderThan)); err != nil {
			return res, err
		}
	}
	return res, nil
}

// pruneMessages walks the primary key from the lowest id up to the first id
// made at the cutoff: message ids are UUIDv7, which sort by the time they
// were made, and a message made after the cutoff was updated after it too.
func (c *Client) pruneMessages(ctx context.Context, cutoff time.Time) (int, error) {
	total := 0
	cursor := pgtype.UUID{Valid: true} // the zero UUID sorts first
	bound := pgtype.UUID{Bytes: firstUUIDv7At(cutoff), Valid: true}
	for {
		var looked, deleted int
		var last pgtype.UUID
		if err := c.pool.QueryRow(ctx, c.queries.PruneMessages, cursor, bound, pruneBatchSize, cutoff, c.config.DedupWindow.Seconds()).
			Scan(&looked, &last, &deleted); err != nil {
			return total, fmt.Errorf("outbound: prune messages: %w", err)
		}
		total += deleted
		if looked < pruneBatchSize {
			return total, nil
		}
		cursor = last
	}
}

// pruneEnvelopes walks the envelopes requested before the cutoff, oldest
// first. Envelope ids may come from callers, so they are walked by time.
func (c *Client) pruneEnvelopes(ctx context.Context, cutoff time.Time) (int, error) {
	total := 0
	var (
		afterAt time.Time // zero: before every envelope
		afterID = pgtype.UUID{Valid: true}
	)
	for {
		var looked, deleted int
		var lastAt *time.Time
		var lastID pgtype.UUID
		if err := c.pool.QueryRow(ctx, c.queries.PruneEnvelopes, cutoff, afterAt, afterID, pruneBatchSize).
			Scan(&looked, &lastAt, &lastID, &deleted); err != nil {
			return total, fmt.Errorf("outbound: prune envelopes: %w", err)
		}
		total += deleted
		if looked < pruneBatchSize || lastAt == nil {
			return total, nil
		}
		afterAt, afterID = *lastAt, lastID
	}
}

// pruneAuditEvents deletes the oldest events first; every event it looks at
// is deleted, so it needs no cursor.
func (c *Client) pruneAuditEvents(ctx context.Context, cutoff time.Time) (int, error) {
	total := 0
	for {
		tag, err := c.pool.Exec(ctx, c.queries.PruneAuditEvents, cutoff, pruneBatchSize)
		if err != nil {
			return total, fmt.Errorf("outbound: prune audit events: %w", err)
		}
		n := int(tag.RowsAffected())
		total += n
		if n < pruneBatchSize {
			return total, nil
		}
	}
}

// firstUUIDv7At returns the lowest UUIDv7 made at t's millisecond: every
// UUIDv7 made before it sorts below.
func firstUUIDv7At(t time.Time) uuid.UUID {
	var id uuid.UUID
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(max(t.UnixMilli(), 0)))
	copy(id[:6], ms[2:])
	id[6] = 0x70 // version 7, the rest zero
	return id
}

// pruneWorker is the River worker of the periodic prune job.
type pruneWorker struct {
	river.WorkerDefaults[PruneArgs]
	client *Client
}

// Work runs one Prune with the client's retention settings.
func (w *pruneWorker) Work(ctx context.Context, _ *river.Job[PruneArgs]) error {
	cfg := w.client.config
	res, err := w.client.Prune(ctx, &PruneParams{OlderThan: cfg.Retention, AuditEventsOlderThan: cfg.AuditRetention})
	if res != nil && res.Messages+res.Envelopes+res.AuditEvents > 0 {
		w.client.config.Logger.InfoContext(ctx, "outbound: pruned old rows",
			slog.Int("messages", res.Messages), slog.Int("envelopes", res.Envelopes), slog.Int("audit_events", res.AuditEvents))
	}
	return err
}
