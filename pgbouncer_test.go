package outbound_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/internal/devpg"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// TestPgBouncer runs the library through Debian's PgBouncer 1.18 in
// transaction pooling mode, which hands each transaction whichever server
// connection is free and supports no prepared statements: Migrate, triggers,
// reads, cancels, Reconcile, Prune, and delivery with River polling.
func TestPgBouncer(t *testing.T) {
	t.Parallel()
	bouncer, err := devpg.StartPgBouncer(ctxT(t), testDatabaseURL)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, bouncer.Stop()) })

	// The two modes the README recommends: neither prepares a named
	// statement on the server. go test -short runs the stricter, Exec,
	// which asks the server for no parameter types either.
	modes := []pgx.QueryExecMode{pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeExec}
	if testing.Short() {
		modes = modes[1:]
	}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			config, err := pgxpool.ParseConfig(bouncer.URL)
			require.NoError(t, err)
			config.ConnConfig.DefaultQueryExecMode = mode
			config.MaxConns = 8
			pool, err := pgxpool.NewWithConfig(ctx, config)
			require.NoError(t, err)
			t.Cleanup(pool.Close)

			// Migrate, from three goroutines at once: they take turns on a
			// transaction-scoped lock, and no session keeps a lock after.
			schema := newSchemaName()
			t.Cleanup(func() { dropSchema(schema) })
			var wg sync.WaitGroup
			errs := make([]error, 3)
			for i := range errs {
				wg.Go(func() {
					errs[i] = outbound.Migrate(ctx, pool, &outbound.MigrateOpts{Schema: schema, RiverSchema: schema})
				})
			}
			wg.Wait()
			for _, err := range errs {
				require.NoError(t, err)
			}
			// pg_locks and pg_stat_activity are read apart, so a lock taken
			// by another test's transaction can show beside a state read
			// before that transaction began: a lock that outlived its
			// transaction stays, and one seen only in passing does not.
			require.Eventually(t, func() bool {
				var idleWithLocks int
				require.NoError(t, testPool.QueryRow(ctx, `
SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND a.state = 'idle'`).Scan(&idleWithLocks))
				return idleWithLocks == 0
			}, waitCeiling, 10*time.Millisecond, "an advisory lock outlives its transaction")

			notifier := &recordingNotifier{}
			client, err := outbound.New(pool, &outbound.Config{
				Schema:            schema,
				Notifier:          notifier,
				PollOnly:          true,
				FetchCooldown:     10 * time.Millisecond,
				FetchPollInterval: 50 * time.Millisecond,
				MaxWorkers:        4,
				Auditor:           mustTableAuditor(t, pool, schema),
			})
			require.NoError(t, err)

			// Triggers, in a transaction of the library's and of the caller's.
			single := mustTrigger(ctx, t, client, 1, &outbound.TriggerOpts{TemplateID: "t", Actor: "agent:1"})
			dup := mustTrigger(ctx, t, client, 1, &outbound.TriggerOpts{TemplateID: "t"})
			require.True(t, dup.Duplicate)
			tx, err := pool.Begin(ctx)
			require.NoError(t, err)
			inTx, err := client.TriggerTx(ctx, tx, 2, &outbound.TriggerOpts{TemplateID: "t"})
			require.NoError(t, err)
			_, err = client.TriggerTx(ctx, tx, 3, &outbound.TriggerOpts{TemplateID: ""})
			require.ErrorIs(t, err, outbound.ErrInvalidArgument)
			require.NoError(t, tx.Commit(ctx))
			bulk := mustBulkTrigger(ctx, t, client, conversations(10), &outbound.BulkTriggerOpts{TemplateID: "b", RenderedBody: "body"})
			_, err = client.BulkTrigger(ctx, conversations(30), &outbound.BulkTriggerOpts{TemplateID: "b", RenderedBody: "body"})
			require.ErrorIs(t, err, outbound.ErrBatchTooLarge)
			later := mustTrigger(ctx, t, client, 4, &outbound.TriggerOpts{TemplateID: "t", ScheduleIn: time.Hour})
			require.NoError(t, client.CancelMessage(ctx, later.Message.ID, nil))

			// Reads.
			msg, err := client.Message(ctx, single.Message.ID)
			require.NoError(t, err)
			require.Equal(t, single.Message.ID, msg.ID)
			env, err := client.Envelope(ctx, bulk.Envelope.ID)
			require.NoError(t, err)
			require.Equal(t, 10, env.Count)
			envelopes, err := client.ListEnvelopes(ctx, nil)
			require.NoError(t, err)
			require.Len(t, envelopes.Envelopes, 2)
			refused, err := client.ListEnvelopes(ctx, &outbound.ListEnvelopesParams{Status: outbound.EnvelopeStatusRefusedCapExceeded})
			require.NoError(t, err)
			require.Len(t, refused.Envelopes, 1)
			progress, err := client.EnvelopeProgress(ctx, bulk.Envelope.ID)
			require.NoError(t, err)
			require.Equal(t, 10, progress.Total())

			// Delivery, with River polling rather than listening.
			require.NoError(t, client.Start(ctx))
			ids := append([]uuid.UUID{single.Message.ID, inTx.Message.ID}, messageIDs(bulk.Messages)...)
			waitForStatus(t, client, ids, outbound.MessageStatusSent)
			stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			require.NoError(t, client.Stop(stopCtx))
			require.Len(t, notifier.Calls(), len(ids), "each message delivered once")

			// Maintenance.
			_, err = client.Reconcile(ctx)
			require.NoError(t, err)
			_, err = client.Prune(ctx, &outbound.PruneParams{OlderThan: time.Hour, AuditEventsOlderThan: time.Hour})
			require.NoError(t, err)
			require.NoError(t, outbound.MigrateDown(ctx, pool, &outbound.MigrateOpts{Schema: schema}))
			require.NoError(t, outbound.Migrate(ctx, pool, &outbound.MigrateOpts{Schema: schema, RiverSchema: schema}))
		})
	}
}

func mustTableAuditor(tb testing.TB, pool *pgxpool.Pool, schema string) *outbound.TableAuditor {
	tb.Helper()
	a, err := outbound.NewTableAuditor(pool, schema)
	require.NoError(tb, err)
	return a
}

// TestPollOnlyHoldsNoListener checks that Config.PollOnly reaches the
// embedded River client: without it, River keeps a connection that has run
// LISTEN, which PgBouncer's transaction pooling cannot keep; with it, none.
func TestPollOnlyHoldsNoListener(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	schema := migratedSchema(t)
	listeners := func(app string) int {
		var n int
		require.NoError(t, testPool.QueryRow(ctx,
			"SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN %'", app).Scan(&n))
		return n
	}
	start := func(app string, pollOnly bool) {
		pool := newTestPool(t, 4, withApplicationName(app))
		client, err := outbound.New(pool, &outbound.Config{Schema: schema, PollOnly: pollOnly, MaxWorkers: 1})
		require.NoError(t, err)
		require.NoError(t, client.Start(ctx))
		t.Cleanup(func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			require.NoError(t, client.Stop(stopCtx))
		})
	}

	listening, polling := schema+"_listen", schema+"_poll"
	start(listening, false)
	start(polling, true)
	require.Eventually(t, func() bool { return listeners(listening) > 0 }, waitCeiling, 20*time.Millisecond,
		"without PollOnly, River listens")
	// Both clients have started; the polling one has had as long.
	require.Zero(t, listeners(polling))
}
