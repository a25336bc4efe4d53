package outbound

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// StatusGaugeMinInterval is the shortest time between two of the
// outbound.messages gauge's queries. A collection sooner than that after the
// last query reports the last query's counts, so that several readers, or
// scrapers, collecting at once cost the database one query.
const StatusGaugeMinInterval = 5 * time.Second

// statusGaugeTimeout bounds the gauge's query, so that a collection never
// waits long on a database that does not answer.
const statusGaugeTimeout = 2 * time.Second

// gaugedStatuses are the statuses outbound.messages reports: those of
// messages awaiting a result, whose counts are the backlog, in the order of
// CountAwaitingByStatus's columns.
var gaugedStatuses = awaitingStatuses

// statusGauge is the outbound.messages observable gauge: the number of
// messages pending, in flight (delivering) and failed awaiting a retry.
type statusGauge struct {
	count       func(ctx context.Context) ([]int64, error)
	minInterval time.Duration
	sets        []metric.ObserveOption

	mu      sync.Mutex
	countAt time.Time
	counts  []int64
}

// observeStatuses registers the outbound.messages gauge, whose callback
// counts the statuses with count.
func (t *telemetry) observeStatuses(count func(ctx context.Context) ([]int64, error)) *statusGauge {
	g := &statusGauge{count: count, minInterval: StatusGaugeMinInterval}
	for _, s := range gaugedStatuses {
		g.sets = append(g.sets, metric.WithAttributeSet(attribute.NewSet(metricStatus.String(string(s)))))
	}
	gauge, err := t.meter.Int64ObservableGauge(metricMessages,
		metric.WithDescription("Messages awaiting a delivery result, by status: pending, delivering (in flight) and failed (awaiting a retry)."),
		metric.WithUnit("{message}"))
	if err != nil {
		otel.Handle(err)
		return g
	}
	if _, err := t.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		counts, err := g.read(ctx)
		if err != nil {
			return err
		}
		for i, n := range counts {
			o.ObserveInt64(gauge, n, g.sets[i])
		}
		return nil
	}, gauge); err != nil {
		otel.Handle(err)
	}
	return g
}

// read returns the counts, from a query unless the last one is younger than
// minInterval. A failed query reports nothing rather than stale counts.
func (g *statusGauge) read(ctx context.Context) ([]int64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.counts != nil && time.Since(g.countAt) < g.minInterval {
		return g.counts, nil
	}
	ctx, cancel := context.WithTimeout(ctx, statusGaugeTimeout)
	defer cancel()
	counts, err := g.count(ctx)
	if err != nil {
		g.counts = nil
		return nil, fmt.Errorf("outbound: %s gauge: %w", metricMessages, err)
	}
	g.counts, g.countAt = counts, time.Now()
	return counts, nil
}

// countAwaitingByStatus counts the messages awaiting a result by status, in
// the order of gaugedStatuses, with one query over the awaiting_result index.
func (c *Client) countAwaitingByStatus(ctx context.Context) ([]int64, error) {
	if err := c.checkSchema(ctx, c.pool); err != nil {
		return nil, err
	}
	counts := make([]int64, len(gaugedStatuses))
	if err := c.pool.QueryRow(ctx, c.queries.CountAwaitingByStatus).Scan(&counts[0], &counts[1], &counts[2]); err != nil {
		return nil, err
	}
	return counts, nil
}
