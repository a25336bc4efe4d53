package outbound

import (
	"context"

	"github.com/cairnloop/outbound/internal/sqltext"
	"github.com/cairnloop/outbound/internal/telemetry"
)

// StatusGaugeMinInterval is the shortest time between two queries of the
// backlog gauges.
//
// Deprecated: it pins an internal bound that a caller cannot act on
// (telemetry.BacklogMinInterval, 5s, is what the gauges use); it is no
// longer part of the API and will be removed.
const StatusGaugeMinInterval = telemetry.BacklogMinInterval

// gaugedStatuses are the statuses outbound.message.backlog reports: those of
// messages awaiting a result, whose counts are the backlog, in the order of
// CountAwaitingByStatus's columns.
var gaugedStatuses = awaitingStatuses

// readBacklog counts the messages awaiting a result by status, in the order
// of gaugedStatuses, and reads the oldest pending message's age, with one
// query over the awaiting_result index, once the schema check has passed.
func readBacklog(ctx context.Context, schema *schemaState, pool querier, queries *sqltext.Queries) (*telemetry.Backlog, error) {
	if err := schema.check(ctx, pool); err != nil {
		return nil, err
	}
	b := &telemetry.Backlog{Counts: make([]int64, len(gaugedStatuses))}
	if err := pool.QueryRow(ctx, queries.CountAwaitingByStatus).Scan(&b.Counts[0], &b.Counts[1], &b.Counts[2], &b.OldestPendingAge); err != nil {
		return nil, err
	}
	return b, nil
}
