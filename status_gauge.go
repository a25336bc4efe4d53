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

// StatusGaugeMinInterval is the shortest time between two queries of the
// outbound.message.backlog and outbound.message.oldest_pending.age gauges,
// which one query reads. A collection sooner than that after the
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

// backlog is what the gauges report: the counts of the messages awaiting a
// result, in the order of gaugedStatuses, and the age of the oldest pending
// message that is due.
type backlog struct {
	counts           []int64
	oldestPendingAge float64
}

// statusGauge is the outbound.message.backlog observable gauge, the number of
// messages pending, in flight (delivering) and failed awaiting a retry, and
// outbound.message.oldest_pending.age, how long the oldest pending message
// that is due has waited: the age an alert watches for a delivery that has
// stopped, as when no worker runs.
type statusGauge struct {
	count       func(ctx context.Context) (*backlog, error)
	minInterval time.Duration
	sets        []metric.ObserveOption

	mu      sync.Mutex
	countAt time.Time
	last    *backlog
}

// observeStatuses registers the gauges, whose callback reads the backlog
// with count.
func (t *telemetry) observeStatuses(count func(ctx context.Context) (*backlog, error)) *statusGauge {
	g := &statusGauge{count: count, minInterval: StatusGaugeMinInterval}
	for _, s := range gaugedStatuses {
		g.sets = append(g.sets, metric.WithAttributeSet(attribute.NewSet(metricStatus.String(string(s)))))
	}
	gauge, err := t.meter.Int64ObservableGauge(metricMessageBacklog,
		metric.WithDescription("Messages awaiting a delivery result, by status: pending, delivering (in flight) and failed (awaiting a retry)."),
		metric.WithUnit("{message}"))
	if err != nil {
		otel.Handle(err)
		return g
	}
	age, err := t.meter.Float64ObservableGauge(metricMessageOldestPending,
		metric.WithDescription("How long the oldest pending message that is due has waited since it was due (triggered, or scheduled for), 0 when none waits. "+
			"It rises while no worker delivers."),
		metric.WithUnit("s"))
	if err != nil {
		otel.Handle(err)
		return g
	}
	if _, err := t.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		b, err := g.read(ctx)
		if err != nil {
			return err
		}
		for i, n := range b.counts {
			o.ObserveInt64(gauge, n, g.sets[i])
		}
		o.ObserveFloat64(age, b.oldestPendingAge)
		return nil
	}, gauge, age); err != nil {
		otel.Handle(err)
	}
	return g
}

// read returns the backlog, from a query unless the last one is younger than
// minInterval. A failed query reports nothing rather than a stale backlog.
func (g *statusGauge) read(ctx context.Context) (*backlog, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.last != nil && time.Since(g.countAt) < g.minInterval {
		return g.last, nil
	}
	ctx, cancel := context.WithTimeout(ctx, statusGaugeTimeout)
	defer cancel()
	b, err := g.count(ctx)
	if err != nil {
		g.last = nil
		return nil, fmt.Errorf("outbound: %s gauges: %w", metricMessageBacklog, err)
	}
	g.last, g.countAt = b, time.Now()
	return b, nil
}

// readBacklog counts the messages awaiting a result by status, in the order
// of gaugedStatuses, and reads the oldest pending message's age, with one
// query over the awaiting_result index.
func (c *Client) readBacklog(ctx context.Context) (*backlog, error) {
	if err := c.checkSchema(ctx, c.pool); err != nil {
		return nil, err
	}
	b := &backlog{counts: make([]int64, len(gaugedStatuses))}
	if err := c.pool.QueryRow(ctx, c.queries.CountAwaitingByStatus).Scan(&b.counts[0], &b.counts[1], &b.counts[2], &b.oldestPendingAge); err != nil {
		return nil, err
	}
	return b, nil
}
