package outbound_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/internal/devpg"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// faultLoad is a steady load of triggers and bulks from several goroutines,
// recording what each call reported, for the fault tests to check afterwards.
type faultLoad struct {
	client *outbound.Client
	// callTimeout bounds each call; a call must return within it (plus a
	// little) even while the database is gone.
	callTimeout time.Duration
	next        atomic.Int64

	mu        sync.Mutex
	envelopes []*outbound.BulkTriggerResult // bulks reported done
	messages  []*outbound.Message           // triggers reported done
	refusals  []uuid.UUID                   // refused envelopes reported recorded
	failures  int
	slowest   time.Duration
}

// run calls Trigger and BulkTrigger from goroutines until ctx ends.
func (l *faultLoad) run(ctx context.Context, goroutines int) {
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for ctx.Err() == nil {
				l.call(ctx, g%2 == 0)
			}
		})
	}
	wg.Wait()
}

func (l *faultLoad) call(ctx context.Context, bulk bool) {
	callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.callTimeout)
	defer cancel()
	start := time.Now()
	var (
		res  *outbound.BulkTriggerResult
		trig *outbound.TriggerResult
		err  error
	)
	if bulk {
		// Up to 44 recipients against a cap of 40: about one bulk in eleven
		// is refused, and its refused envelope written in a transaction of
		// its own.
		n := 1 + rand.IntN(44)
		last := l.next.Add(int64(n))
		ids := make([]int64, n)
		for i := range ids {
			ids[i] = last - int64(i)
		}
		res, err = l.client.BulkTrigger(callCtx, ids, &outbound.BulkTriggerOpts{TemplateID: "fault", RenderedBody: "body"})
	} else {
		trig, err = l.client.Trigger(callCtx, l.next.Add(1), &outbound.TriggerOpts{TemplateID: "fault"})
	}
	took := time.Since(start)

	l.mu.Lock()
	l.slowest = max(l.slowest, took)
	var tooLarge *outbound.BatchTooLargeError
	switch {
	case errors.As(err, &tooLarge) && tooLarge.EnvelopeID != uuid.Nil:
		l.refusals = append(l.refusals, tooLarge.EnvelopeID)
	case err != nil:
		l.failures++
	case bulk:
		l.envelopes = append(l.envelopes, res)
	default:
		l.messages = append(l.messages, trig.Message)
	}
	l.mu.Unlock()
	if err != nil {
		// Back off a little, as a caller would, rather than spin while the
		// database is down.
		time.Sleep(5 * time.Millisecond)
	}
}

// sawEveryOutcome reports whether the load has seen each outcome the fault
// tests check: a bulk and a trigger done, a refusal recorded, and a call
// failed.
func (l *faultLoad) sawEveryOutcome() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.envelopes) > 0 && len(l.messages) > 0 && len(l.refusals) > 0 && l.failures > 0
}

// hungPast is how long past its context a call may take to return before it
// counts as hung: a call that ignored its context would never return, and a
// busy machine is slow to return from one that ran out.
const hungPast = 30 * time.Second

// requireConsistent checks what a fault may never leave behind: every
// envelope has exactly its recipients' messages (a refused one none), every
// message its job and every delivery job its message, and every call
// reported done is there.
func requireConsistent(t *testing.T, pool *pgxpool.Pool, schema string, load *faultLoad) {
	t.Helper()
	ctx := ctxT(t)
	count := func(query string) int {
		t.Helper()
		var n int
		require.NoError(t, pool.QueryRow(ctx, query).Scan(&n))
		return n
	}
	messages, envelopes, jobs := table(schema, "messages"), table(schema, "bulk_envelopes"), table(schema, "river_job")

	require.Zero(t, count(`SELECT count(*) FROM `+envelopes+` e
		WHERE e.status = 'submitted' AND (e.count <> (
			SELECT count(DISTINCT m.conversation_id) FROM `+messages+` m
			WHERE m.bulk_envelope_id = e.id AND m.conversation_id = ANY(e.recipient_conversation_ids))
		OR e.count <> (SELECT count(*) FROM `+messages+` m WHERE m.bulk_envelope_id = e.id))`),
		"an envelope without exactly one message per recipient, and no other")
	require.Zero(t, count(`SELECT count(*) FROM `+envelopes+` e
		WHERE e.status = 'refused_cap_exceeded' AND EXISTS (SELECT 1 FROM `+messages+` m WHERE m.bulk_envelope_id = e.id)`),
		"a refused envelope with messages")
	require.Zero(t, count(`SELECT count(*) FROM `+messages+` m
		WHERE m.bulk_envelope_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM `+envelopes+` e WHERE e.id = m.bulk_envelope_id)`),
		"a bulk message without its envelope")
	require.Zero(t, count(`SELECT count(*) FROM `+messages+` m
		WHERE NOT EXISTS (SELECT 1 FROM `+jobs+` j WHERE j.id = m.job_id AND j.args->>'message_id' = m.id::text)`),
		"a message without its delivery job")
	require.Zero(t, count(`SELECT count(*) FROM `+jobs+` j
		WHERE j.kind = 'outbound_delivery' AND NOT EXISTS (SELECT 1 FROM `+messages+` m WHERE m.id::text = j.args->>'message_id')`),
		"a delivery job without its message")

	client, err := outbound.New(pool, &outbound.Config{Schema: schema})
	require.NoError(t, err)
	for _, res := range load.envelopes {
		env, err := client.Envelope(ctx, res.Envelope.ID)
		require.NoError(t, err, "envelope reported done is missing")
		require.Equal(t, outbound.EnvelopeStatusSubmitted, env.Status)
		for _, m := range res.Messages {
			_, err := client.Message(ctx, m.ID)
			require.NoError(t, err, "bulk message reported done is missing")
		}
	}
	for _, m := range load.messages {
		_, err := client.Message(ctx, m.ID)
		require.NoError(t, err, "message reported done is missing")
	}
	for _, id := range load.refusals {
		env, err := client.Envelope(ctx, id)
		require.NoError(t, err, "refusal reported recorded is missing")
		require.Equal(t, outbound.EnvelopeStatusRefusedCapExceeded, env.Status)
	}
}

// TestKilledConnections terminates the client's connections at random moments
// while bulks and triggers run, then checks that nothing is half-written and
// that the client works again.
func TestKilledConnections(t *testing.T) {
	t.Parallel()
	schema := migratedSchema(t)
	appName := "outbound_fault_" + schema
	config, err := pgxpool.ParseConfig(testDatabaseURL)
	require.NoError(t, err)
	config.MaxConns = 6
	// The name lets the killer pick this pool's backends and no others.
	config.ConnConfig.RuntimeParams["application_name"] = appName
	pool, err := pgxpool.NewWithConfig(context.Background(), config)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	client, err := outbound.New(pool, &outbound.Config{
		Schema: schema, MaxBatchSize: 40, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)

	load := &faultLoad{client: client, callTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var kills atomic.Int64
	var wg sync.WaitGroup
	// The load runs for at least a few seconds, and on until every outcome
	// checked below has happened: how long that takes is the machine's
	// business, not the verdict's.
	wg.Go(func() {
		defer cancel()
		started := time.Now()
		for time.Since(started) < waitCeiling {
			time.Sleep(10 * time.Millisecond)
			if time.Since(started) >= 2*time.Second && kills.Load() > 0 && load.sawEveryOutcome() {
				return
			}
		}
	})
	wg.Go(func() {
		for ctx.Err() == nil {
			// Every 20 to 100ms: each kill costs the server a new backend,
			// and calls last a few milliseconds, so that kills land in calls
			// often enough, and the load runs on until one has.
			time.Sleep(time.Duration(20+rand.IntN(80)) * time.Millisecond)
			var killed int
			err := testPool.QueryRow(context.Background(), `SELECT count(*) FROM (
				SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				WHERE application_name = $1 ORDER BY random() LIMIT 1) k`, appName).Scan(&killed)
			if err == nil {
				kills.Add(int64(killed))
			}
		}
	})
	load.run(ctx, 6)
	wg.Wait()

	t.Logf("connections killed: %d; calls done: %d bulks, %d triggers, %d refusals; calls failed: %d; slowest call: %s",
		kills.Load(), len(load.envelopes), len(load.messages), len(load.refusals), load.failures, load.slowest)
	require.NotEmpty(t, load.refusals, "no refusal was recorded")
	require.NotZero(t, kills.Load(), "the test killed no connection")
	require.NotZero(t, load.failures, "no call met a killed connection")
	require.NotEmpty(t, load.envelopes)
	require.NotEmpty(t, load.messages)
	require.Less(t, load.slowest, load.callTimeout+hungPast, "a call hung past its context")
	requireConsistent(t, testPool, schema, load)

	// The pool replaced its dead connections: the client works again.
	res, err := client.BulkTrigger(ctxT(t), []int64{1_000_000_001}, &outbound.BulkTriggerOpts{TemplateID: "after", RenderedBody: "b"})
	require.NoError(t, err)
	require.Len(t, res.Messages, 1)
}

// TestDatabaseRestart stops and starts a database of its own twice under a
// steady load of triggers and bulks: calls fail while it is down, none hangs
// past its context or panics, calls succeed again once it is back, and
// nothing is half-written.
func TestDatabaseRestart(t *testing.T) {
	t.Parallel()
	cluster, err := devpg.Start(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, cluster.Stop()) })
	config, err := pgxpool.ParseConfig(cluster.URL)
	require.NoError(t, err)
	config.MaxConns = 6
	pool, err := pgxpool.NewWithConfig(context.Background(), config)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	const schema = "restart"
	require.NoError(t, outbound.Migrate(ctxT(t), pool, &outbound.MigrateOpts{Schema: schema}))
	client, err := outbound.New(pool, &outbound.Config{
		Schema: schema, MaxBatchSize: 40, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)

	load := &faultLoad{client: client, callTimeout: 2 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { load.run(ctx, 4) })

	succeeded := func() int {
		load.mu.Lock()
		defer load.mu.Unlock()
		return len(load.envelopes) + len(load.messages)
	}
	for range 2 {
		before := succeeded()
		require.Eventually(t, func() bool { return succeeded() > before+20 }, waitCeiling, 10*time.Millisecond,
			"calls do not succeed with the database up")
		require.NoError(t, cluster.Restart(context.Background()))
	}
	before := succeeded()
	require.Eventually(t, func() bool { return succeeded() > before+20 }, waitCeiling, 10*time.Millisecond,
		"calls do not succeed again after the restart")
	cancel()
	wg.Wait()

	t.Logf("calls done: %d bulks, %d triggers, %d refusals; calls failed: %d; slowest call: %s",
		len(load.envelopes), len(load.messages), len(load.refusals), load.failures, load.slowest)
	require.NotZero(t, load.failures, "no call met the restarts")
	require.Less(t, load.slowest, load.callTimeout+hungPast, "a call hung past its context")
	requireConsistent(t, pool, schema, load)

	// A clean call after the load: nothing is left broken.
	_, err = client.Trigger(ctxT(t), 1, &outbound.TriggerOpts{TemplateID: "after"})
	require.NoError(t, err)
}

// TestIdleConnectionsKilled kills every idle connection of a client's pool,
// as a database failover, a pooler's restart or an idle timeout does, and
// calls at once, before the pool's own liveness check (for connections idle
// over a second) would notice: each call works, on a fresh connection.
func TestIdleConnectionsKilled(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	schema := migratedSchema(t)
	appName := "outbound_idle_" + schema
	pool := newTestPool(t, 3, withApplicationName(appName))
	client, err := outbound.New(pool, &outbound.Config{Schema: schema})
	require.NoError(t, err)

	calls := []struct {
		name string
		call func() error
	}{
		{"Trigger", func() error {
			_, err := client.Trigger(ctx, 1, &outbound.TriggerOpts{TemplateID: "t"})
			return err
		}},
		{"BulkTrigger", func() error {
			_, err := client.BulkTrigger(ctx, []int64{2, 3}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
			return err
		}},
		{"CancelEnvelope", func() error {
			_, err := client.CancelEnvelope(ctx, uuid.New(), nil)
			if errors.Is(err, outbound.ErrNotFound) {
				return nil
			}
			return err
		}},
	}
	for _, c := range calls {
		// Three idle connections in the pool, then none of them alive.
		conns := make([]*pgxpool.Conn, 3)
		for i := range conns {
			conns[i], err = pool.Acquire(ctx)
			require.NoError(t, err)
		}
		for _, conn := range conns {
			conn.Release()
		}
		var killed int
		require.NoError(t, testPool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, appName).Scan(&killed))
		require.Equal(t, 3, killed)
		require.Eventually(t, func() bool {
			var left int
			require.NoError(t, testPool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, appName).Scan(&left))
			return left == 0
		}, waitCeiling, 5*time.Millisecond)
		require.NoError(t, c.call(), c.name)
	}
}
