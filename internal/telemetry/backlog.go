package telemetry

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cairnloop/outbound/outboundtype"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// BacklogMinInterval is the shortest time between two queries of the
// outbound.message.backlog and outbound.message.oldest_pending.age gauges,
// which one query reads. A collection sooner than that after the
// last query reports the last query's counts, so that several readers, or
// scrapers, collecting at once cost the database one query.
const BacklogMinInterval = 5 * time.Second

// statusGaugeTimeout bounds the gauge's query, so that a collection never
// waits long on a database that does not answer.
const statusGaugeTimeout = 2 * time.Second

// Backlog is what the gauges report: the counts of the messages awaiting a
// result, in the order of the gauge's statuses, the age of the oldest pending
// message that is due and not held by a rate limit, and how many are.
type Backlog struct {
	// Counts are the counts of the gauge's statuses, in their order.
	Counts []int64
	// OldestPendingAge is in seconds, 0 when no pending message is due.
	// A message its rate limit holds back does not count: it waits as it
	// should, and RateLimited counts it instead.
	OldestPendingAge float64
	// RateLimited is how many pending or failed messages their rate limit,
	// or a Notifier's RateLimited pause, holds back.
	RateLimited int64
}

// BacklogGauge is the outbound.message.backlog observable gauge, the number of
// messages pending, in flight (delivering) and failed awaiting a retry, and
// outbound.message.oldest_pending.age, how long the oldest pending message
// that is due has waited: the age an alert watches for a delivery that has
// stopped, as when no worker runs.
type BacklogGauge struct {
	count       func(ctx context.Context) (*Backlog, error)
	minInterval time.Duration
	sets        []metric.ObserveOption

	mu      sync.Mutex
	countAt time.Time
	last    *Backlog
}

// ObserveBacklog registers the gauges, whose callback reads the backlog
// with count.
func (t *Telemetry) ObserveBacklog(statuses []outboundtype.MessageStatus, count func(ctx context.Context) (*Backlog, error)) *BacklogGauge {
	g := &BacklogGauge{count: count, minInterval: BacklogMinInterval}
	for _, s := range statuses {
		g.sets = append(g.sets, metric.WithAttributeSet(attribute.NewSet(MetricStatus.String(string(s)))))
	}
	gauge, err := t.meter.Int64ObservableGauge(MetricMessageBacklog,
		metric.WithDescription("Messages awaiting a delivery result, by status: pending, delivering (in flight) and failed (awaiting a retry)."),
		metric.WithUnit("{message}"))
	if err != nil {
		otel.Handle(err)
		return g
	}
	age, err := t.meter.Float64ObservableGauge(MetricMessageOldestPending,
		metric.WithDescription("How long the oldest pending message that is due, and not held back by a rate limit, has waited since it was due (triggered, or scheduled for), 0 when none waits. "+
			"It rises while no worker delivers."),
		metric.WithUnit("s"))
	if err != nil {
		otel.Handle(err)
		return g
	}
	limited, err := t.meter.Int64ObservableGauge(MetricMessageRateLimited,
		metric.WithDescription("Pending or failed messages held back by their key's rate limit, or by a notifier's RateLimited pause: waiting as they should, at the limit's pace."),
		metric.WithUnit("{message}"))
	if err != nil {
		otel.Handle(err)
		return g
	}
	if _, err := t.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		b, err := g.read(ctx)
		if err != nil {
			return err
		}
		for i, n := range b.Counts {
			o.ObserveInt64(gauge, n, g.sets[i])
		}
		o.ObserveFloat64(age, b.OldestPendingAge)
		o.ObserveInt64(limited, b.RateLimited)
		return nil
	}, gauge, age, limited); err != nil {
		otel.Handle(err)
	}
	return g
}

// read returns the backlog, from a query unless the last one is younger than
// minInterval. A failed query reports nothing rather than a stale backlog.
func (g *BacklogGauge) read(ctx context.Context) (*Backlog, error) {
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
		return nil, fmt.Errorf("outbound: %s gauges: %w", MetricMessageBacklog, err)
	}
	g.last, g.countAt = b, time.Now()
	return b, nil
}

// SetMinInterval changes how often the gauges may query: for tests, which
// need not wait BacklogMinInterval between two collections.
func (g *BacklogGauge) SetMinInterval(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.minInterval = d
}
