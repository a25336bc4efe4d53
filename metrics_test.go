package outbound_test

import (
	"context"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestDurationHistogramBuckets checks that every duration histogram has
// buckets in seconds that resolve milliseconds, as OpenTelemetry's HTTP
// semantic conventions do, rather than the SDK's default buckets, which are
// meant for milliseconds.
func TestDurationHistogramBuckets(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	reader, providers := newTelemetryRecorder()
	b := setup(t, working(), withConfig(&outbound.Config{TracerProvider: providers.tracer, MeterProvider: providers.meter}))

	res := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t"})
	mustBulkTrigger(ctx, t, b.client, []int64{2, 3}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
	waitForStatus(t, b.client, []uuid.UUID{res.Message.ID}, outbound.MessageStatusSent)
	// The attempt records its telemetry after its result is committed, which
	// the status shows: wait for the attempt to end, not for the row.
	require.Eventually(t, func() bool { return len(histogramBounds(t, reader, "outbound.delivery.duration")) > 0 },
		waitCeiling, 5*time.Millisecond, "outbound.delivery.duration was recorded")

	for _, name := range []string{"outbound.trigger.duration", "outbound.bulk_trigger.duration", "outbound.delivery.duration"} {
		all := histogramBounds(t, reader, name)
		require.NotEmpty(t, all, "%s was recorded", name)
		for _, bounds := range all {
			require.IsIncreasing(t, bounds, name)
			var underTenthOfASecond int
			for _, bound := range bounds {
				if bound > 0 && bound <= 0.1 {
					underTenthOfASecond++
				}
			}
			require.GreaterOrEqual(t, underTenthOfASecond, 3, "%s: bounds between 0 and 100ms: %v", name, bounds)
			last := bounds[len(bounds)-1]
			require.True(t, last >= 5 && last <= 120, "%s: the last bound, %v, is between 5s and 2min", name, last)
			require.Equal(t, 0.005, bounds[0], "%s starts where OpenTelemetry's HTTP histograms do", name)
		}
	}
}

// TestTriggerFailureReasons checks that a failed trigger or bulk says why,
// from a fixed vocabulary, on every instrument that counts it.
func TestTriggerFailureReasons(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	reader, providers := newTelemetryRecorder()
	b := setup(t, withConfig(&outbound.Config{TracerProvider: providers.tracer, MeterProvider: providers.meter}))

	// invalid_argument: no template.
	_, err := b.client.Trigger(ctx, 1, &outbound.TriggerOpts{})
	require.ErrorIs(t, err, outbound.ErrInvalidArgument)
	// auditor_error.
	_, err = b.client.Trigger(ctx, 1, &outbound.TriggerOpts{TemplateID: "t", Auditor: failingAuditor})
	require.Error(t, err)
	// context_done: the caller gave up.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = b.client.Trigger(cancelled, 1, &outbound.TriggerOpts{TemplateID: "t"})
	require.ErrorIs(t, err, context.Canceled)
	// database_error: the database refuses the insert.
	_, err = testPool.Exec(ctx, `
CREATE FUNCTION `+table(b.schema, "refuse_insert")+`() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'inserts refused by the test'; END $$;
CREATE TRIGGER refuse_insert BEFORE INSERT ON `+table(b.schema, "messages")+`
FOR EACH ROW WHEN (NEW.template_id = 'refused') EXECUTE FUNCTION `+table(b.schema, "refuse_insert")+`()`)
	require.NoError(t, err)
	_, err = b.client.Trigger(ctx, 1, &outbound.TriggerOpts{TemplateID: "refused"})
	require.ErrorContains(t, err, "inserts refused by the test")
	// schema_mismatch: a client on a schema never migrated.
	unmigrated, err := outbound.New(testPool, &outbound.Config{Schema: newSchemaName(), MeterProvider: providers.meter})
	require.NoError(t, err)
	_, err = unmigrated.Trigger(ctx, 1, &outbound.TriggerOpts{TemplateID: "t"})
	require.ErrorIs(t, err, outbound.ErrSchemaMismatch)

	// Bulks: idempotency_conflict, and database_error for two recipients.
	envelopeID := uuid.Must(uuid.NewV7())
	mustBulkTrigger(ctx, t, b.client, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "one", EnvelopeID: envelopeID})
	_, err = b.client.BulkTrigger(ctx, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "two", EnvelopeID: envelopeID})
	require.ErrorIs(t, err, outbound.ErrIdempotencyConflict)
	_, err = b.client.BulkTrigger(ctx, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "refused", RenderedBody: "b"})
	require.ErrorContains(t, err, "inserts refused by the test")

	requirePointSums(t, reader, byOutcomeReason, map[string]map[string]int64{
		"outbound.trigger.duration": {"failed/invalid_argument": 1, "failed/auditor_error": 1, "failed/context_done": 1,
			"failed/database_error": 1, "failed/schema_mismatch": 1},
		"outbound.bulk_trigger.duration": {"submitted": 1, "failed/idempotency_conflict": 1, "failed/database_error": 1},
		// A bulk's recipients count once each, with the bulk's reason; the
		// first bulk's two were triggered.
		"outbound.trigger.messages": {"triggered": 2, "failed/invalid_argument": 1, "failed/auditor_error": 1, "failed/context_done": 1,
			"failed/database_error": 1 + 2, "failed/schema_mismatch": 1, "failed/idempotency_conflict": 2},
	})
}

// TestStatusGauge checks outbound.message.backlog: the messages awaiting a result
// by status, counted by one query per collection at most, and by none when
// the last query is younger than StatusGaugeMinInterval.
func TestStatusGauge(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	reader, providers := newTelemetryRecorder()
	schema := migratedSchema(t)
	counter := &statementCounter{}
	pool := newTestPool(t, 2, func(c *pgxpool.Config) { c.ConnConfig.Tracer = counter })
	client, err := outbound.New(pool, &outbound.Config{Schema: schema, MeterProvider: providers.meter})
	require.NoError(t, err)

	res := mustBulkTrigger(ctx, t, client, []int64{1, 2, 3, 4, 5, 6}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
	f := newFactory(schema)
	f.setStatus(t, res.Messages[0].ID, outbound.MessageStatusFailed)
	f.setStatus(t, res.Messages[1].ID, outbound.MessageStatusFailed)
	f.setStatus(t, res.Messages[2].ID, outbound.MessageStatusDelivering)
	f.setStatus(t, res.Messages[3].ID, outbound.MessageStatusSent)

	before := counter.n.Load()
	require.Equal(t, map[string]int64{"pending": 2, "delivering": 1, "failed": 2}, gaugeByStatus(t, reader))
	require.Equal(t, int64(1), counter.n.Load()-before, "one query for the three counts")

	// A collection right after the last reports its counts without a query.
	f.setStatus(t, res.Messages[4].ID, outbound.MessageStatusSent)
	before = counter.n.Load()
	require.Equal(t, map[string]int64{"pending": 2, "delivering": 1, "failed": 2}, gaugeByStatus(t, reader))
	require.Zero(t, counter.n.Load()-before, "no query within StatusGaugeMinInterval")

	outbound.SetStatusGaugeMinInterval(client, 0)
	require.Equal(t, map[string]int64{"pending": 1, "delivering": 1, "failed": 2}, gaugeByStatus(t, reader))
	require.Equal(t, int64(1), counter.n.Load()-before)

	// A query that fails reports nothing, rather than the last counts.
	pool.Close()
	var rm metricdata.ResourceMetrics
	require.ErrorContains(t, reader.Collect(ctx, &rm), "outbound.message.backlog gauges: closed pool")
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			require.NotEqual(t, "outbound.message.backlog", m.Name)
			require.NotEqual(t, "outbound.message.oldest_pending.age", m.Name)
		}
	}
}

// TestOldestPendingAge checks outbound.message.oldest_pending.age, the gauge an
// alert watches for a delivery that has stopped: with no worker running, it
// rises from the time the oldest due message was triggered; a message
// scheduled for later does not count until it is due; once the worker
// delivers, it falls to 0, and outbound.message.duration records each
// message's time from its trigger to sent.
func TestOldestPendingAge(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	reader, providers := newTelemetryRecorder()
	b := setup(t, withConfig(&outbound.Config{MeterProvider: providers.meter, Notifier: outbound.NotifierFunc(func(context.Context, *outbound.Message) error { return nil })}))
	outbound.SetStatusGaugeMinInterval(b.client, 0)
	require.Zero(t, oldestPendingAge(t, reader), "nothing pending")

	mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "later", ScheduleIn: time.Hour})
	require.Zero(t, oldestPendingAge(t, reader), "a message scheduled for later is not late")

	// Backdated by a minute in the database, so that the gauge's rise is
	// the database's clock and not this test's speed.
	res := mustTrigger(ctx, t, b.client, 2, &outbound.TriggerOpts{TemplateID: "now"})
	_, err := testPool.Exec(ctx, "UPDATE "+table(b.schema, "messages")+" SET created_at = created_at - interval '1 minute', scheduled_at = scheduled_at - interval '1 minute' WHERE id = $1", res.Message.ID)
	require.NoError(t, err)
	first := oldestPendingAge(t, reader)
	require.GreaterOrEqual(t, first, 60.0, "no worker runs: the message has waited a minute")
	require.Eventually(t, func() bool { return oldestPendingAge(t, reader) > first }, waitCeiling, 10*time.Millisecond, "the age rises while no worker runs")

	// A worker delivers it: the gauge falls to 0 (the later message is not
	// due), and the message's time to sent is recorded, a minute or more.
	require.NoError(t, b.client.Start(ctx))
	t.Cleanup(func() { require.NoError(t, b.client.Stop(context.Background())) })
	waitForStatus(t, b.client, []uuid.UUID{res.Message.ID}, outbound.MessageStatusSent)
	require.Zero(t, oldestPendingAge(t, reader))
	// The attempt records its telemetry after its result is committed.
	require.Eventually(t, func() bool { return len(findMetrics(t, reader, "outbound.message.duration")) > 0 },
		waitCeiling, 5*time.Millisecond, "outbound.message.duration was recorded")
	var recorded bool
	for _, m := range findMetrics(t, reader, "outbound.message.duration") {
		require.Equal(t, "s", m.Unit)
		for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
			require.Equal(t, 1, dp.Attributes.Len(), "status is the only attribute")
			status, _ := dp.Attributes.Value("status")
			require.Equal(t, "sent", status.AsString())
			require.Equal(t, uint64(1), dp.Count)
			require.GreaterOrEqual(t, dp.Sum, 60.0)
			recorded = true
		}
	}
	require.True(t, recorded, "outbound.message.duration recorded the sent message")
}

// oldestPendingAge reads outbound.message.oldest_pending.age, which carries
// no attributes.
func oldestPendingAge(t *testing.T, reader *sdkmetric.ManualReader) float64 {
	t.Helper()
	var ages []float64
	for _, m := range findMetrics(t, reader, "outbound.message.oldest_pending.age") {
		require.Equal(t, "s", m.Unit)
		gauge, ok := m.Data.(metricdata.Gauge[float64])
		require.True(t, ok, "a float64 gauge, got %T", m.Data)
		for _, dp := range gauge.DataPoints {
			require.Zero(t, dp.Attributes.Len(), "no attributes")
			ages = append(ages, dp.Value)
		}
	}
	require.Len(t, ages, 1)
	return ages[0]
}

// TestHeldByItsLimitIsNotStalled: messages that their rate limit holds back
// wait as they should, so outbound.message.oldest_pending.age, the gauge an
// alert watches for a stall, leaves them out, and
// outbound.message.rate_limited counts them; a due message that nothing
// holds back still raises the age.
func TestHeldByItsLimitIsNotStalled(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	reader, providers := newTelemetryRecorder()
	b := setup(t, working(), withConfig(&outbound.Config{
		MeterProvider: providers.meter,
		Notifier:      outbound.NotifierFunc(func(context.Context, *outbound.Message) error { return nil }),
		RateLimits:    map[string]outbound.RateLimit{"sms": {Limit: 1, Per: time.Hour}},
		RateLimitKey:  func(m *outbound.Message) string { return m.TemplateID },
	}))
	outbound.SetStatusGaugeMinInterval(b.client, 0)
	res := mustBulkTrigger(ctx, t, b.client, conversations(3), &outbound.BulkTriggerOpts{TemplateID: "sms", RenderedBody: "body"})
	ids := messageIDs(res.Messages)
	waitForStatusCount(t, b.client, ids, outbound.MessageStatusSent, 1)
	for _, id := range ids {
		if m, _ := b.client.Message(ctx, id); m.Status != outbound.MessageStatusSent {
			waitForRateLimited(t, b.client, id)
		}
	}
	// Backdated by an hour: held by the limit, they are not late.
	_, err := testPool.Exec(ctx, "UPDATE "+table(b.schema, "messages")+" SET scheduled_at = scheduled_at - interval '1 hour' WHERE rate_parked_at IS NOT NULL")
	require.NoError(t, err)
	require.Zero(t, oldestPendingAge(t, reader), "messages held by their limit are not a stall")
	require.Equal(t, int64(2), rateLimitedGauge(t, reader))

	// One that nothing holds back, due a minute ago and not delivered:
	// stalled, as with no worker.
	stalled := b.factory.insertMessages(t, []messageRow{{ConversationID: 99, TemplateID: "email"}})
	_, err = testPool.Exec(ctx, "UPDATE "+table(b.schema, "messages")+" SET scheduled_at = now() - interval '1 minute' WHERE id = $1", stalled[0])
	require.NoError(t, err)
	require.GreaterOrEqual(t, oldestPendingAge(t, reader), 60.0)
	require.Equal(t, int64(2), rateLimitedGauge(t, reader))
}

// rateLimitedGauge reads outbound.message.rate_limited.
func rateLimitedGauge(t *testing.T, reader *sdkmetric.ManualReader) int64 {
	t.Helper()
	var values []int64
	for _, m := range findMetrics(t, reader, "outbound.message.rate_limited") {
		for _, dp := range m.Data.(metricdata.Gauge[int64]).DataPoints {
			require.Zero(t, dp.Attributes.Len(), "no attributes")
			values = append(values, dp.Value)
		}
	}
	require.Len(t, values, 1)
	return values[0]
}
