package outbound_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
)

// startClient makes a client on the pool and the schema, starts its worker,
// and stops it when the test ends, after opening gate if it is not nil.
func startClient(t *testing.T, pool *pgxpool.Pool, config *outbound.Config, gate *gateNotifier) *outbound.Client {
	t.Helper()
	client, err := outbound.New(pool, config)
	require.NoError(t, err)
	require.NoError(t, client.Start(context.Background()))
	t.Cleanup(func() {
		if gate != nil {
			gate.Open()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, client.Stop(ctx))
	})
	return client
}

// TestDeliveryLease checks that an attempt is a lease: nothing is held while the
// notifier runs, a rescued or taken-over attempt cannot record over another's,
// and neither idle-in-transaction timeouts, killed connections nor the pool's
// size limit what is in flight.
func TestDeliveryLease(t *testing.T) {
	t.Parallel()

	// HoldsNothingWhileNotifying blocks eight notifier calls at once
	// on a pool of four connections and looks at the database meanwhile: no
	// transaction is open, no row is locked, no connection is held, and yet each
	// message shows that it is in flight.
	t.Run("HoldsNothingWhileNotifying", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		app := "lease_" + schema
		pool := newTestPool(t, 4, withApplicationName(app))
		gate := newGateNotifier(nil)
		client := startClient(t, pool, &outbound.Config{Schema: schema, Notifier: gate, MaxWorkers: 8}, gate)

		bulk := mustBulkTrigger(ctx, t, client, conversations(8), &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})
		// Twice as many notifier calls in flight as the pool has connections.
		gate.waitInFlight(t, 8)

		// The claims are committed: anyone can read them.
		for _, m := range bulk.Messages {
			msg, err := client.Message(ctx, m.ID)
			require.NoError(t, err)
			require.Equal(t, outbound.MessageStatusDelivering, msg.Status)
			require.Equal(t, "delivering", msg.Metadata["status"])
			require.Equal(t, 1, msg.Attempts)
		}

		// River's own maintenance may be in a transaction for a moment; a
		// delivery's would have been open since its notifier call began.
		var blockedSince time.Time
		require.NoError(t, testPool.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&blockedSince))
		time.Sleep(300 * time.Millisecond)
		var backends, idleInTransaction int
		require.NoError(t, testPool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE state LIKE 'idle in transaction%' AND state_change <= $2)
		FROM pg_stat_activity WHERE application_name = $1`, app, blockedSince).Scan(&backends, &idleInTransaction))
		require.NotZero(t, backends, "the library's backends are found by their application name")
		require.Zero(t, idleInTransaction, "a backend of the library is idle in a transaction across the notifier calls")

		tx, err := testPool.Begin(ctx)
		require.NoError(t, err)
		for _, m := range bulk.Messages {
			_, err := tx.Exec(ctx, "SELECT 1 FROM "+table(schema, "messages")+" WHERE id = $1 FOR UPDATE NOWAIT", m.ID)
			require.NoError(t, err, "message %s is locked while its notifier runs", m.ID)
		}
		require.NoError(t, tx.Rollback(ctx))

		// River itself takes a connection now and then, to fetch and to elect
		// a leader, and gives it back at once; the deliveries hold none.
		require.Eventually(t, func() bool { return pool.Stat().AcquiredConns() == 0 }, waitCeiling, time.Millisecond,
			"the pool never had all its connections back while the notifiers ran")

		gate.Open()
		waitForStatus(t, client, messageIDs(bulk.Messages), outbound.MessageStatusSent)
	})

	// RescuedWhileRunning makes River run a delivery job a second
	// time while its first attempt is still calling the notifier: the second
	// attempt finds the claim held, does not call the notifier, and snoozes until
	// the claim would run out; the first records the message sent, and the
	// snoozed job then completes without another call.
	t.Run("RescuedWhileRunning", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		gate := newGateNotifier(nil)
		// One worker, busy with the first attempt, so that the second attempt
		// runs in the other client.
		config := &outbound.Config{Schema: schema, Notifier: gate, MaxWorkers: 1, NotifyTimeout: 5 * time.Second}
		first := startClient(t, newTestPool(t, 4), config, gate)
		res := mustTrigger(ctx, t, first, 30, &outbound.TriggerOpts{TemplateID: "recovery"})
		gate.waitInFlight(t, 1)

		simulateRescue(t, schema, res.Message.JobID)
		startClient(t, newTestPool(t, 4), &outbound.Config{Schema: schema, Notifier: gate, MaxWorkers: 1, NotifyTimeout: 5 * time.Second}, gate)
		jobs := hostRiver(t, schema)
		require.Eventually(t, func() bool {
			job, err := jobs.JobGet(ctx, res.Message.JobID)
			require.NoError(t, err)
			return job.State == rivertype.JobStateScheduled && job.Metadata != nil && string(job.Metadata) != "{}"
		}, waitCeiling, 10*time.Millisecond, "the second attempt did not snooze")
		job, err := jobs.JobGet(ctx, res.Message.JobID)
		require.NoError(t, err)
		require.Contains(t, string(job.Metadata), `"snoozes": 1`)
		require.Equal(t, 1, gate.CallsFor(res.Message.ID), "the second attempt called the notifier beside the first")

		gate.Open()
		msg := waitForStatus(t, first, []uuid.UUID{res.Message.ID}, outbound.MessageStatusSent)[0]
		require.Equal(t, 1, msg.Attempts)
		if testing.Short() {
			// Wake the snoozed job now, as River's JobRetry does for an
			// operator, rather than when the first claim would have run out
			// (NotifyTimeout + 20s): it must complete all the same, without a
			// call.
			_, err := jobs.JobRetry(ctx, res.Message.JobID)
			require.NoError(t, err)
		}
		require.Eventually(t, func() bool {
			job, err := jobs.JobGet(ctx, res.Message.JobID)
			require.NoError(t, err)
			return job.State == rivertype.JobStateCompleted
		}, waitCeiling, 20*time.Millisecond, "the snoozed job never completed")
		_, oneMessage := gate.MaxInFlight()
		require.Equal(t, 1, oneMessage, "two calls for the message at once")
		require.Equal(t, 1, gate.CallsFor(res.Message.ID))
	})

	// RecordIsGuardedByTheClaim lets a second attempt take over the
	// claim of a first that is still running, as it may once the claim has run
	// out (the first looked dead). The second delivers; the first then fails,
	// and its guarded record must leave the message as the second left it.
	t.Run("RecordIsGuardedByTheClaim", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		reader, providers := newTelemetryRecorder()
		var calls atomic.Int32
		entered, release := make(chan struct{}), make(chan struct{})
		notifier := outbound.NotifierFunc(func(ctx context.Context, msg *outbound.Message) error {
			if calls.Add(1) == 1 {
				close(entered)
				<-release
				return errors.New("the first attempt fails late")
			}
			return nil
		})
		config := func() *outbound.Config {
			return &outbound.Config{Schema: schema, Notifier: notifier, MaxWorkers: 1, NotifyTimeout: 10 * time.Second,
				MeterProvider: providers.meter, TracerProvider: providers.tracer}
		}
		first := startClient(t, newTestPool(t, 4), config(), nil)
		res := mustTrigger(ctx, t, first, 31, &outbound.TriggerOpts{TemplateID: "recovery"})
		<-entered

		_, err := testPool.Exec(ctx, "UPDATE "+table(schema, "messages")+" SET claimed_until = now() WHERE id = $1", res.Message.ID)
		require.NoError(t, err)
		simulateRescue(t, schema, res.Message.JobID)
		startClient(t, newTestPool(t, 4), config(), nil)
		sent := waitForStatus(t, first, []uuid.UUID{res.Message.ID}, outbound.MessageStatusSent)[0]
		require.Equal(t, 2, sent.Attempts)

		close(release)
		require.Eventually(t, func() bool { return deliveryCounts(t, reader)["failed/claim_lost"] == 1 },
			waitCeiling, 10*time.Millisecond, "the first attempt's result: %v", deliveryCounts(t, reader))
		after, err := first.Message(ctx, res.Message.ID)
		require.NoError(t, err)
		require.Equal(t, sent, after, "the first attempt's late failure changed the message")
		require.Equal(t, "completed", jobByID(t, schema, res.Message.JobID).State)
	})

	// IdleInTransactionTimeout runs the worker where the server ends
	// any session idle in a transaction for a second, as many managed services
	// do, with a notifier that takes longer than that: the provider is called
	// once and the message is sent.
	t.Run("IdleInTransactionTimeout", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		pool := newTestPool(t, 4, func(c *pgxpool.Config) {
			c.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = "1s"
		})
		notifier := &recordingNotifier{fn: func(context.Context, *outbound.Message) error {
			time.Sleep(1500 * time.Millisecond)
			return nil
		}}
		client := startClient(t, pool, &outbound.Config{Schema: schema, Notifier: notifier, MaxAttempts: 3,
			RetryPolicy: fixedRetry(50 * time.Millisecond)}, nil)

		res := mustTrigger(ctx, t, client, 32, &outbound.TriggerOpts{TemplateID: "recovery"})
		msg := waitForStatus(t, client, []uuid.UUID{res.Message.ID}, outbound.MessageStatusSent, outbound.MessageStatusDiscarded)[0]
		require.Equal(t, outbound.MessageStatusSent, msg.Status)
		require.Equal(t, 1, msg.Attempts)
		require.Len(t, notifier.Calls(), 1, "the provider was called more than once")
		require.Equal(t, "completed", jobByID(t, schema, msg.JobID).State)
	})

	// ConnectionsKilledWhileNotifying has every notifier call kill
	// all of the worker pool's connections before it succeeds: each success is
	// still recorded, on a fresh connection, and no message is sent twice.
	t.Run("ConnectionsKilledWhileNotifying", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		app := "killed_" + schema
		pool := newTestPool(t, 4, withApplicationName(app))
		var killed atomic.Int64
		notifier := &recordingNotifier{fn: func(ctx context.Context, _ *outbound.Message) error {
			var pids []int32
			if err := testPool.QueryRow(ctx, "SELECT coalesce(array_agg(pid) FILTER (WHERE pg_terminate_backend(pid)), '{}') FROM pg_stat_activity WHERE application_name = $1",
				app).Scan(&pids); err != nil {
				return err
			}
			killed.Add(int64(len(pids)))
			// Gone for good before the result is recorded.
			for {
				var left int
				if err := testPool.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", pids).Scan(&left); err != nil {
					return err
				}
				if left == 0 {
					return nil
				}
				time.Sleep(time.Millisecond)
			}
		}}
		// River's listener loses its connection too, and logs it.
		client := startClient(t, pool, &outbound.Config{Schema: schema, Notifier: notifier, MaxWorkers: 3,
			Logger: slog.New(slog.DiscardHandler)}, nil)

		bulk := mustBulkTrigger(ctx, t, client, conversations(6), &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})
		for _, msg := range waitForStatus(t, client, messageIDs(bulk.Messages), outbound.MessageStatusSent) {
			require.Equal(t, 1, msg.Attempts, "message %s", msg.ID)
			require.Len(t, notifier.callsFor(msg.ID), 1, "message %s was sent twice", msg.ID)
			require.Equal(t, "completed", jobByID(t, schema, msg.JobID).State)
		}
		require.NotZero(t, killed.Load(), "no connection was killed")
		t.Logf("%d connections killed while notifiers ran", killed.Load())
	})

	// ConcurrencyNotTiedToPool blocks notifier calls until as many
	// are in flight as the test wants: the default of 100 on a pool of 4, 200 on
	// a pool of 4, 1,000 on a pool of 10.
	t.Run("ConcurrencyNotTiedToPool", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name       string
			maxConns   int32
			maxWorkers int // 0: the default
			messages   int
			inFlight   int
		}{
			{"Default100OnPoolOf4", 4, 0, 150, outbound.DefaultMaxWorkers},
			{"200OnPoolOf4", 4, 200, 200, 200},
			{"1000OnPoolOf10", 10, 1000, 1000, 1000},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				ctx := ctxT(t)
				schema := migratedSchema(t)
				gate := newGateNotifier(nil)
				pool := newTestPool(t, tc.maxConns)
				client := startClient(t, pool, &outbound.Config{Schema: schema, Notifier: gate, MaxWorkers: tc.maxWorkers,
					MaxBatchSize: tc.messages}, gate)
				bulk := mustBulkTrigger(ctx, t, client, conversations(tc.messages), &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})

				gate.waitInFlight(t, tc.inFlight)
				if tc.messages > tc.inFlight {
					// No more than MaxWorkers, however long one waits.
					time.Sleep(time.Second)
					require.Equal(t, tc.inFlight, gate.InFlight())
				}
				progress, err := client.EnvelopeProgress(ctx, bulk.Envelope.ID)
				require.NoError(t, err)
				require.Equal(t, tc.inFlight, progress.Delivering)

				gate.Open()
				require.Eventually(t, func() bool {
					progress, err := client.EnvelopeProgress(ctx, bulk.Envelope.ID)
					require.NoError(t, err)
					return progress.Sent == tc.messages
				}, waitCeiling, 50*time.Millisecond)
				all, oneMessage := gate.MaxInFlight()
				require.Equal(t, tc.inFlight, all)
				require.Equal(t, 1, oneMessage)
			})
		}
	})
}

// simulateRescue does to a running delivery job what River's rescuer does to
// one it takes for lost: the job becomes available to run again while its
// attempt may in fact still be running.
func simulateRescue(t *testing.T, schema string, jobID int64) {
	t.Helper()
	_, err := testPool.Exec(context.Background(), "UPDATE "+table(schema, "river_job")+
		" SET state = 'available', scheduled_at = now() WHERE id = $1 AND state = 'running'", jobID)
	require.NoError(t, err)
}
