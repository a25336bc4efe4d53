package outbound_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/cairnloop/outbound"
)

// grants are the times the calls' claims were granted by the database's
// clock (the claim's updated_at, which the message handed to the Notifier
// carries), sorted: the times the rate limit counted the calls at, whatever
// this machine's scheduling did after.
func grants(n *recordingNotifier) []time.Time {
	var out []time.Time
	for _, c := range n.Calls() {
		out = append(out, c.Message.UpdatedAt)
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// requireWithinLimit checks the limit's promise on sorted grant times: in
// every window from one grant to a later one, at most Burst + Limit × t/Per
// grants.
func requireWithinLimit(t *testing.T, grants []time.Time, l outbound.RateLimit) {
	t.Helper()
	for i := range grants {
		for j := i; j < len(grants); j++ {
			window := grants[j].Sub(grants[i])
			allowed := float64(l.Burst) + float64(l.Limit)*window.Seconds()/l.Per.Seconds()
			// A microsecond's slack for the database's timestamp rounding.
			allowed += float64(l.Limit) * 1e-6 / l.Per.Seconds()
			require.LessOrEqualf(t, float64(j-i+1), allowed,
				"%d calls started in %s (grants %d to %d); the limit allows %.2f", j-i+1, window, i, j, allowed)
		}
	}
}

// deliveries sums outbound.delivery.attempts for one outcome and reason.
func deliveries(t *testing.T, reader *metric.ManualReader, outcome, reason string) int64 {
	t.Helper()
	var n int64
	for _, m := range findMetrics(t, reader, "outbound.delivery.attempts") {
		for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
			o, _ := dp.Attributes.Value("outcome")
			r, _ := dp.Attributes.Value("reason")
			if o.AsString() == outcome && r.AsString() == reason {
				n += dp.Value
			}
		}
	}
	return n
}

// rateLimitRow reads a key's rate_limits row's pause, zero when none.
func pausedUntil(t *testing.T, schema, key string) time.Time {
	t.Helper()
	var until *time.Time
	require.NoError(t, testPool.QueryRow(ctxT(t), "SELECT paused_until FROM "+table(schema, "rate_limits")+" WHERE key = $1", key).Scan(&until))
	if until == nil {
		return time.Time{}
	}
	return *until
}

func TestRateLimits(t *testing.T) {
	t.Parallel()

	t.Run("SharedByEveryProcess", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		const n = 45
		limit := outbound.RateLimit{Limit: 20, Per: time.Second, Burst: 5}
		notifier := &recordingNotifier{}
		config := func() *outbound.Config {
			return &outbound.Config{
				Notifier:          notifier,
				RateLimits:        map[string]outbound.RateLimit{"": limit},
				MaxWorkers:        10,
				MaxBatchSize:      n,
				FetchCooldown:     10 * time.Millisecond,
				FetchPollInterval: 50 * time.Millisecond,
			}
		}
		// Two clients, each with its own pool and River client, on one
		// schema: two processes, as far as the database can tell.
		first := setup(t, working(), withConfig(config()))
		second := setup(t, working(), withConfig(config()), onSchema(first.schema))
		_ = second

		res := mustBulkTrigger(ctx, t, first.client, conversations(n), &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "body"})
		msgs := waitForStatus(t, first.client, messageIDs(res.Messages), outbound.MessageStatusSent)

		grants := grants(notifier)
		require.Len(t, grants, n, "one call per message")
		requireWithinLimit(t, grants, limit)
		// The limit did hold the calls back: at 20 a second after a burst
		// of 5, the last starts 2s after the first at the earliest.
		require.GreaterOrEqual(t, grants[n-1].Sub(grants[0]), 2*time.Second-time.Millisecond)
		for _, m := range msgs {
			require.Equal(t, 1, m.Attempts, "waiting for the limit used no attempt")
			require.True(t, m.RateLimitedUntil.IsZero())
		}
	})

	t.Run("WaitingMessageIsPendingAndCancellable", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		notifier := &recordingNotifier{}
		b := setup(t, working(), withConfig(&outbound.Config{
			Notifier:   notifier,
			RateLimits: map[string]outbound.RateLimit{"": {Limit: 1, Per: time.Hour}},
		}))
		first := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t"})
		waitForStatus(t, b.client, []uuid.UUID{first.Message.ID}, outbound.MessageStatusSent)

		single := mustTrigger(ctx, t, b.client, 2, &outbound.TriggerOpts{TemplateID: "t"})
		bulk := mustBulkTrigger(ctx, t, b.client, []int64{3, 4, 5}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "body"})
		waiting := append([]uuid.UUID{single.Message.ID}, messageIDs(bulk.Messages)...)
		for _, id := range waiting {
			m := waitForRateLimited(t, b.client, id)
			require.Equal(t, outbound.MessageStatusPending, m.Status)
			require.Equal(t, 0, m.Attempts)
			// Expected no sooner than the key's next slot, an hour away.
			require.Greater(t, time.Until(m.RateLimitedUntil), 50*time.Minute)
			// River records the snooze just after the booking commits.
			var job *jobRow
			require.Eventually(t, func() bool {
				job = jobByID(t, b.schema, m.JobID)
				return job.State != "running"
			}, waitCeiling, 5*time.Millisecond)
			// Parked: its job sleeps past its expected turn, unless a
			// dispatcher wakes it sooner.
			require.Contains(t, []string{"available", "scheduled"}, job.State)
			require.True(t, job.ScheduledAt.After(time.Now()), "job due at %s", job.ScheduledAt)
			require.Equal(t, 0, job.Attempt, "River counted no attempt for the wait")
		}

		require.NoError(t, b.client.CancelMessage(ctx, single.Message.ID, nil))
		_, err := b.client.CancelEnvelope(ctx, bulk.Envelope.ID, nil)
		require.NoError(t, err)
		for _, id := range waiting {
			m, err := b.client.Message(ctx, id)
			require.NoError(t, err)
			require.Equal(t, outbound.MessageStatusCancelled, m.Status)
			require.Empty(t, notifier.callsFor(id))
		}
	})

	t.Run("WaitingHoldsNoWorker", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		notifier := &recordingNotifier{}
		b := setup(t, working(), withConfig(&outbound.Config{
			Notifier:     notifier,
			MaxWorkers:   1,
			RateLimits:   map[string]outbound.RateLimit{"sms": {Limit: 1, Per: time.Hour}},
			RateLimitKey: func(m *outbound.Message) string { return m.TemplateID },
		}))
		sms := mustBulkTrigger(ctx, t, b.client, conversations(5), &outbound.BulkTriggerOpts{TemplateID: "sms", RenderedBody: "body"})
		ids := messageIDs(sms.Messages)
		waitForStatusCount(t, b.client, ids, outbound.MessageStatusSent, 1)
		for _, id := range ids {
			if m, _ := b.client.Message(ctx, id); m.Status != outbound.MessageStatusSent {
				waitForRateLimited(t, b.client, id)
			}
		}
		// Four messages wait an hour for their slot, and the one worker
		// is free: a message of an unlimited key goes at once.
		email := mustTrigger(ctx, t, b.client, 100, &outbound.TriggerOpts{TemplateID: "email"})
		waitForStatus(t, b.client, []uuid.UUID{email.Message.ID}, outbound.MessageStatusSent)
		waitForStatusCount(t, b.client, ids, outbound.MessageStatusSent, 1)
		var rows int
		require.NoError(t, testPool.QueryRow(ctx, "SELECT count(*) FROM "+table(b.schema, "rate_limits")).Scan(&rows))
		require.Equal(t, 1, rows, "an unlimited key has no row")
	})

	// WaitingIsNotPolling: a message waiting for a slot parks, and its job
	// sleeps until a dispatcher releases it (or past its expected turn),
	// rather than being fetched again on each of River's polls. Slots an
	// hour apart make every message wait, however slow the machine; then
	// two seconds of River polling every 10ms (200 polls) may wake each
	// waiting message once at most. A bulk triggered when the key has no
	// slot free parks at its trigger, and River does not fetch it at all.
	t.Run("WaitingIsNotPolling", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		reader, providers := newTelemetryRecorder()
		notifier := &recordingNotifier{}
		b := setup(t, working(), withConfig(&outbound.Config{
			Notifier:          notifier,
			RateLimits:        map[string]outbound.RateLimit{"": {Limit: 1, Per: time.Hour, Burst: 1}},
			FetchCooldown:     5 * time.Millisecond,
			FetchPollInterval: 10 * time.Millisecond,
			MeterProvider:     providers.meter,
		}))
		first := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t"})
		waitForStatus(t, b.client, []uuid.UUID{first.Message.ID}, outbound.MessageStatusSent)
		res := mustBulkTrigger(ctx, t, b.client, []int64{2, 3, 4}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "body"})
		for _, m := range res.Messages {
			waitForRateLimited(t, b.client, m.ID)
		}
		// One triggered by itself is fetched, and parks at its claim; the
		// telemetry follows the park's commit.
		single := mustTrigger(ctx, t, b.client, 5, &outbound.TriggerOpts{TemplateID: "t"})
		waitForRateLimited(t, b.client, single.Message.ID)
		require.Eventually(t, func() bool { return deliveries(t, reader, "deferred", "rate_limit_wait") >= 1 },
			waitCeiling, 5*time.Millisecond)
		before := deliveries(t, reader, "deferred", "rate_limit_wait")
		time.Sleep(2 * time.Second)
		woken := deliveries(t, reader, "deferred", "rate_limit_wait") - before
		require.LessOrEqual(t, woken, int64(len(res.Messages)+1), "a waiting message was fetched again and again")
		require.Len(t, notifier.Calls(), 1, "a waiting message was sent before its slot")
		for _, m := range res.Messages {
			job, err := hostRiver(t, b.schema).JobGet(ctx, m.JobID)
			require.NoError(t, err)
			require.Equal(t, rivertype.JobStateScheduled, job.State, "parked at its trigger, its job sleeps")
			require.Zero(t, job.Attempt, "River fetched a message that parked at its trigger")
		}
	})

	t.Run("RateLimitedPausesTheKeyEverywhere", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		reader, providers := newTelemetryRecorder()
		const pause = 1500 * time.Millisecond
		var refusedOnce sync.Once
		var refusedAt time.Time
		notifier := &recordingNotifier{fn: func(ctx context.Context, msg *outbound.Message) error {
			refused := false
			refusedOnce.Do(func() { refused, refusedAt = true, msg.UpdatedAt })
			if refused {
				return outbound.RateLimited(pause, errors.New("429 too many requests"))
			}
			return nil
		}}
		config := func() *outbound.Config {
			return &outbound.Config{
				Notifier:          notifier,
				RateLimits:        map[string]outbound.RateLimit{"": {Limit: 1000, Per: time.Second}},
				MaxAttempts:       1, // RateLimited must not spend it
				FetchCooldown:     10 * time.Millisecond,
				FetchPollInterval: 50 * time.Millisecond,
				MeterProvider:     providers.meter,
			}
		}
		first := setup(t, working(), withConfig(config()))
		setup(t, working(), withConfig(config()), onSchema(first.schema))

		lead := mustTrigger(ctx, t, first.client, 1, &outbound.TriggerOpts{TemplateID: "t"})
		m := waitForRateLimited(t, first.client, lead.Message.ID)
		require.Equal(t, outbound.MessageStatusPending, m.Status)
		require.Equal(t, 0, m.Attempts, "RateLimited is not an attempt")
		require.Contains(t, m.LastError, "429 too many requests")
		until := pausedUntil(t, first.schema, "")
		// The pause runs from when the attempt recorded it, between the claim
		// and now, by the database's clock.
		var dbNow time.Time
		require.NoError(t, testPool.QueryRow(ctx, "SELECT now()").Scan(&dbNow))
		require.False(t, until.Before(refusedAt.Add(pause)), "the pause ends %s, before the claim plus the pause", until)
		require.False(t, until.After(dbNow.Add(pause)), "the pause ends %s, after now plus the pause", until)

		rest := mustBulkTrigger(ctx, t, first.client, conversations(20), &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "body"})
		ids := append(messageIDs(rest.Messages), lead.Message.ID)
		msgs := waitForStatus(t, first.client, ids, outbound.MessageStatusSent)
		for _, m := range msgs {
			require.Equal(t, 1, m.Attempts)
		}
		grants := grants(notifier)
		require.Len(t, grants, 22)
		for _, g := range grants[1:] {
			require.False(t, g.Before(until), "a call started at %s, inside the pause that ends at %s", g, until)
		}
		require.Equal(t, int64(1), deliveries(t, reader, "deferred", "notifier_rate_limited"))
		require.Zero(t, deliveries(t, reader, "failed", "notifier_rate_limited"))
	})

	t.Run("RetryAfterCountsRateLimitedDoesNot", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		reader, providers := newTelemetryRecorder()
		seen := sync.Map{}
		notifier := &recordingNotifier{fn: func(ctx context.Context, msg *outbound.Message) error {
			if _, again := seen.LoadOrStore(msg.ID, true); again {
				return nil
			}
			if msg.TemplateID == "retry-after" {
				return outbound.RetryAfter(50*time.Millisecond, errors.New("429"))
			}
			return outbound.RateLimited(50*time.Millisecond, errors.New("429"))
		}}
		b := setup(t, working(), withConfig(&outbound.Config{
			Notifier:      notifier,
			MaxAttempts:   1,
			MeterProvider: providers.meter,
		}))
		retried := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "retry-after"})
		limited := mustTrigger(ctx, t, b.client, 2, &outbound.TriggerOpts{TemplateID: "rate-limited"})
		waitForStatus(t, b.client, []uuid.UUID{retried.Message.ID}, outbound.MessageStatusDiscarded)
		waitForStatus(t, b.client, []uuid.UUID{limited.Message.ID}, outbound.MessageStatusSent)
		// An attempt records its telemetry after its result is committed.
		require.Eventually(t, func() bool { return deliveries(t, reader, "discarded", "notifier_retry_after") == 1 },
			waitCeiling, 5*time.Millisecond, "the discarded attempt was counted")
		require.Equal(t, int64(1), deliveries(t, reader, "deferred", "notifier_rate_limited"))
	})

	t.Run("ConfigRefused", func(t *testing.T) {
		t.Parallel()
		cases := map[string]map[string]outbound.RateLimit{
			`Config.RateLimits["sms"].Limit`: {"sms": {Limit: 0, Per: time.Second}},
			`Config.RateLimits["sms"].Per`:   {"sms": {Limit: 1}},
			`Config.RateLimits["sms"].Burst`: {"sms": {Limit: 1, Per: time.Second, Burst: -1}},
			`Config.RateLimits["sms"]`:       {"sms": {Limit: 2_000_000, Per: time.Second}},
			`Config.RateLimits`:              {"a\x00b": {Limit: 1, Per: time.Second}},
		}
		for field, limits := range cases {
			_, err := outbound.New(testPool, &outbound.Config{Schema: "unused", RateLimits: limits})
			require.ErrorIs(t, err, outbound.ErrInvalidArgument)
			var invalid *outbound.InvalidArgumentError
			require.ErrorAs(t, err, &invalid)
			require.Equal(t, field, invalid.Field)
		}
	})
}

// waitForRateLimited waits until a message waits for its rate limit, and
// returns it.
func waitForRateLimited(t *testing.T, client *outbound.Client, id uuid.UUID) *outbound.Message {
	t.Helper()
	var m *outbound.Message
	require.Eventually(t, func() bool {
		var err error
		m, err = client.Message(context.Background(), id)
		require.NoError(t, err)
		return !m.RateLimitedUntil.IsZero()
	}, waitCeiling, 5*time.Millisecond, "message %s never waited for its rate limit", id)
	return m
}

// waitForStatusCount waits until exactly want of the messages have status.
func waitForStatusCount(t *testing.T, client *outbound.Client, ids []uuid.UUID, status outbound.MessageStatus, want int) {
	t.Helper()
	require.Eventually(t, func() bool {
		n := 0
		for _, id := range ids {
			m, err := client.Message(context.Background(), id)
			require.NoError(t, err)
			if m.Status == status {
				n++
			}
		}
		return n == want
	}, waitCeiling, 10*time.Millisecond, "never %d messages %s", want, status)
}
