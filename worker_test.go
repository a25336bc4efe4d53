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
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
)

// TestDelivery runs the embedded worker (or a host's River client) against real
// deliveries: sends, retries, discards, notifier panics and timeouts, scheduling,
// stopping and restarting, small pools, lost records and a River schema apart.
func TestDelivery(t *testing.T) {
	t.Parallel()

	t.Run("Sent", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		notifier := &recordingNotifier{}
		b := setup(t, working(), withConfig(&outbound.Config{Notifier: notifier}))

		single := mustTrigger(ctx, t, b.client, 42, &outbound.TriggerOpts{TemplateID: "recovery", Content: "We fixed it."})
		bulk := mustBulkTrigger(ctx, t, b.client, conversations(5), &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})

		ids := append(messageIDs(bulk.Messages), single.Message.ID)
		riverClient, err := river.NewClient(riverpgxv5.New(testPool), &river.Config{Schema: b.schema})
		require.NoError(t, err)
		for _, msg := range waitForStatus(t, b.client, ids, outbound.MessageStatusSent) {
			require.Equal(t, 1, msg.Attempts)
			require.Empty(t, msg.LastError)
			require.False(t, msg.SentAt.IsZero())
			require.Equal(t, "sent", msg.Metadata["status"])
			require.Equal(t, "completed", jobByID(t, b.schema, msg.JobID).State)

			// The notifier was handed this message once, as stored.
			calls := notifier.callsFor(msg.ID)
			require.Len(t, calls, 1)
			require.Equal(t, msg.ConversationID, calls[0].Message.ConversationID)
			require.Equal(t, msg.Content, calls[0].Message.Content)
			require.Equal(t, msg.TemplateID, calls[0].Message.TemplateID)
			require.Equal(t, msg.BulkEnvelopeID, calls[0].Message.BulkEnvelopeID)
			require.Equal(t, 1, calls[0].Message.Attempts)

			// The status update and the job's completion were committed by one
			// transaction: both rows carry its id as xmin.
			var messageXmin, jobXmin uint32
			require.NoError(t, testPool.QueryRow(ctx, "SELECT xmin::text::bigint FROM "+table(b.schema, "messages")+" WHERE id = $1", msg.ID).Scan(&messageXmin))
			require.NoError(t, testPool.QueryRow(ctx, "SELECT xmin::text::bigint FROM "+table(b.schema, "river_job")+" WHERE id = $1", msg.JobID).Scan(&jobXmin))
			require.Equal(t, messageXmin, jobXmin, "message %s and job %d were updated by different transactions", msg.ID, msg.JobID)

			// The job reads through River as River's own completion leaves it.
			job, err := riverClient.JobGet(ctx, msg.JobID)
			require.NoError(t, err)
			require.Equal(t, rivertype.JobStateCompleted, job.State)
			require.Equal(t, 1, job.Attempt)
			require.Empty(t, job.Errors)
			require.NotNil(t, job.AttemptedAt)
			require.NotNil(t, job.FinalizedAt)
			require.False(t, job.FinalizedAt.Before(*job.AttemptedAt), "finalized %s, attempted %s", job.FinalizedAt, job.AttemptedAt)
		}
		require.Len(t, notifier.Calls(), 6)
		require.Equal(t, "We fixed it.", notifier.callsFor(single.Message.ID)[0].Message.Content)
	})

	t.Run("RetriesThenSends", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		var (
			b       *testBundle
			seen    = make(chan *outbound.Message, 1)
			attempt atomic.Int32
		)
		notifier := &recordingNotifier{fn: func(ctx context.Context, msg *outbound.Message) error {
			switch attempt.Add(1) {
			case 1:
				return errors.New("smtp: 451 try again later")
			case 2:
				// The message as others read it while this attempt is in
				// flight: nothing of the library's is open to block the read.
				stored, err := b.client.Message(ctx, msg.ID)
				if err != nil {
					return err
				}
				seen <- stored
				return errors.New("smtp: 451 still busy")
			}
			return nil
		}}
		b = setup(t, working(), withConfig(&outbound.Config{Notifier: notifier}))

		res := mustTrigger(ctx, t, b.client, 7, &outbound.TriggerOpts{TemplateID: "recovery"})

		inSecond := <-seen
		require.Equal(t, outbound.MessageStatusDelivering, inSecond.Status)
		require.Equal(t, "delivering", inSecond.Metadata["status"])
		require.Equal(t, 2, inSecond.Attempts, "the claim counts the attempt")
		require.Equal(t, "smtp: 451 try again later", inSecond.LastError, "the first attempt's error")
		require.True(t, inSecond.SentAt.IsZero())

		msg := waitForStatus(t, b.client, messageIDs([]*outbound.Message{res.Message}), outbound.MessageStatusSent)[0]
		require.Equal(t, 3, msg.Attempts)
		require.Empty(t, msg.LastError)
		require.Equal(t, "sent", msg.Metadata["status"])

		calls := notifier.callsFor(msg.ID)
		require.Len(t, calls, 3)
		for i, c := range calls {
			require.Equal(t, i+1, c.Message.Attempts, "attempt numbers")
			require.Equal(t, msg.ID, c.Message.ID, "every attempt carries the same message id")
		}
	})

	t.Run("DiscardedAfterMaxAttempts", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		notifier := &recordingNotifier{fn: func(context.Context, *outbound.Message) error {
			return errors.New("mailbox does not exist")
		}}
		b := setup(t, working(), withConfig(&outbound.Config{Notifier: notifier, MaxAttempts: 3}))

		res := mustTrigger(ctx, t, b.client, 9, &outbound.TriggerOpts{TemplateID: "recovery"})

		msg := waitForStatus(t, b.client, messageIDs([]*outbound.Message{res.Message}), outbound.MessageStatusDiscarded)[0]
		require.Equal(t, 3, msg.Attempts)
		require.Equal(t, "mailbox does not exist", msg.LastError)
		require.Equal(t, "discarded", msg.Metadata["status"])
		require.Len(t, notifier.callsFor(msg.ID), 3)
		require.Eventually(t, func() bool { return jobByID(t, b.schema, msg.JobID).State == "discarded" },
			waitCeiling, 20*time.Millisecond)

		// Discarding frees the dedup key: the same trigger writes a new message.
		again := mustTrigger(ctx, t, b.client, 9, &outbound.TriggerOpts{TemplateID: "recovery"})
		require.False(t, again.Duplicate)
		require.NotEqual(t, msg.ID, again.Message.ID)
	})

	t.Run("NotifierPanics", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		var attempt atomic.Int32
		notifier := &recordingNotifier{fn: func(context.Context, *outbound.Message) error {
			if attempt.Add(1) == 1 {
				panic("nil map in template")
			}
			return nil
		}}
		var logs syncBuffer
		b := setup(t, working(), withConfig(&outbound.Config{Notifier: notifier, Logger: slog.New(slog.NewTextHandler(&logs, nil))}))

		res := mustTrigger(ctx, t, b.client, 11, &outbound.TriggerOpts{TemplateID: "recovery"})
		msg := waitForStatus(t, b.client, messageIDs([]*outbound.Message{res.Message}), outbound.MessageStatusSent)[0]
		require.Equal(t, 2, msg.Attempts)
		require.Len(t, notifier.callsFor(msg.ID), 2)
		require.Contains(t, logs.String(), "outbound: notifier panicked")
		require.Contains(t, logs.String(), "nil map in template")
	})

	t.Run("NotifierTimeout", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		const late = 900 * time.Millisecond
		var (
			attempt       atomic.Int32
			firstReturned atomic.Bool
			secondStarted atomic.Bool
		)
		notifier := &recordingNotifier{fn: func(ctx context.Context, msg *outbound.Message) error {
			switch attempt.Add(1) {
			case 1:
				time.Sleep(late) // ignores its context, then fails late
				firstReturned.Store(true)
				return errors.New("provider answered late")
			case 2:
				secondStarted.Store(true)
				<-ctx.Done() // hangs until its deadline, then says so
				return ctx.Err()
			}
			return nil
		}}
		b := setup(t, working(), withConfig(&outbound.Config{Notifier: notifier, NotifyTimeout: 300 * time.Millisecond}))

		res := mustTrigger(ctx, t, b.client, 12, &outbound.TriggerOpts{TemplateID: "recovery"})
		msg := waitForStatus(t, b.client, messageIDs([]*outbound.Message{res.Message}), outbound.MessageStatusSent)[0]
		require.Equal(t, 3, msg.Attempts)
		calls := notifier.callsFor(msg.ID)
		require.Len(t, calls, 3)
		// The first call, which ignores its context, was waited for: the
		// second began only after it returned, never beside it.
		require.GreaterOrEqual(t, calls[1].At.Sub(calls[0].At), late)
		require.GreaterOrEqual(t, calls[2].At.Sub(calls[1].At), 300*time.Millisecond)
		require.True(t, firstReturned.Load() && secondStarted.Load())
		for _, c := range calls {
			require.Equal(t, msg.ID, c.Message.ID)
		}

		var errs []string
		require.NoError(t, testPool.QueryRow(ctx, "SELECT array_agg(e->>'error' ORDER BY (e->>'attempt')::int) FROM "+
			table(b.schema, "river_job")+", jsonb_array_elements(to_jsonb(errors)) AS e WHERE id = $1", msg.JobID).Scan(&errs))
		require.Len(t, errs, 2)
		require.Contains(t, errs[0], "notifier timed out after 300ms: provider answered late")
		require.Contains(t, errs[1], "notifier timed out after 300ms")
	})

	t.Run("WithoutNotifier", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, working())

		res := mustTrigger(ctx, t, b.client, 13, &outbound.TriggerOpts{TemplateID: "recovery"})
		msg := waitForStatus(t, b.client, messageIDs([]*outbound.Message{res.Message}), outbound.MessageStatusSent)[0]
		require.Equal(t, 1, msg.Attempts)
		require.False(t, msg.SentAt.IsZero())
		require.Equal(t, "completed", jobByID(t, b.schema, msg.JobID).State)
	})

	// MessageAlreadySent covers a job that runs for a message already
	// recorded as sent, as when a completed job is retried from River's UI: the
	// notifier is not called again, the message is left as it was, and the job
	// completes.
	t.Run("MessageAlreadySent", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)
		res := mustTrigger(ctx, t, b.client, 16, &outbound.TriggerOpts{TemplateID: "recovery"})
		b.factory.ageMessage(t, res.Message.ID, outbound.MessageStatusSent, time.Hour)
		before, err := b.client.Message(ctx, res.Message.ID)
		require.NoError(t, err)

		notifier := &recordingNotifier{}
		setup(t, working(), onSchema(b.schema), withConfig(&outbound.Config{Notifier: notifier}))
		require.Eventually(t, func() bool { return jobByID(t, b.schema, res.Message.JobID).State == "completed" },
			waitCeiling, 10*time.Millisecond)

		require.Empty(t, notifier.Calls())
		after, err := b.client.Message(ctx, res.Message.ID)
		require.NoError(t, err)
		require.Equal(t, before, after)
	})

	t.Run("Scheduled", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		notifier := &recordingNotifier{}
		b := setup(t, working(), withConfig(&outbound.Config{Notifier: notifier}))

		later := mustTrigger(ctx, t, b.client, 14, &outbound.TriggerOpts{TemplateID: "recovery", ScheduleIn: 3 * time.Second})
		now := mustTrigger(ctx, t, b.client, 15, &outbound.TriggerOpts{TemplateID: "recovery"})

		// The unscheduled message goes first, while the scheduled one waits.
		waitForStatus(t, b.client, messageIDs([]*outbound.Message{now.Message}), outbound.MessageStatusSent)
		if time.Now().Before(later.Message.ScheduledAt) {
			require.Empty(t, notifier.callsFor(later.Message.ID))
		}

		msg := waitForStatus(t, b.client, messageIDs([]*outbound.Message{later.Message}), outbound.MessageStatusSent)[0]
		calls := notifier.callsFor(msg.ID)
		require.Len(t, calls, 1)
		require.False(t, calls[0].At.Before(msg.ScheduledAt), "delivered at %s, scheduled for %s", calls[0].At, msg.ScheduledAt)
	})

	// HostRiverClient runs the delivery worker under a River client
	// the host owns, registered with AddWorkers, instead of Start.
	t.Run("HostRiverClient", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		pool := newTestPool(t, 10)
		notifier := &recordingNotifier{}
		client, err := outbound.New(pool, &outbound.Config{Schema: schema, Notifier: notifier})
		require.NoError(t, err)

		workers := river.NewWorkers()
		client.AddWorkers(workers)
		hostRiver, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
			Schema:       schema,
			Queues:       map[string]river.QueueConfig{outbound.DefaultQueue: {MaxWorkers: 2}},
			Workers:      workers,
			PeriodicJobs: client.PeriodicJobs(),
		})
		require.NoError(t, err)
		require.NoError(t, hostRiver.Start(context.Background()))
		t.Cleanup(func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			require.NoError(t, hostRiver.Stop(stopCtx))
		})

		res := mustBulkTrigger(ctx, t, client, conversations(3), &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})
		for _, msg := range waitForStatus(t, client, messageIDs(res.Messages), outbound.MessageStatusSent) {
			require.Len(t, notifier.callsFor(msg.ID), 1)
			require.Equal(t, "completed", jobByID(t, schema, msg.JobID).State)
		}

		// The host's client runs the reconcile job too.
		require.Eventually(t, func() bool {
			var n int
			require.NoError(t, testPool.QueryRow(ctx, "SELECT count(*) FROM "+table(schema, "river_job")+
				" WHERE kind = $1 AND state = 'completed'", outbound.ReconcileJobKind).Scan(&n))
			return n > 0
		}, waitCeiling, 20*time.Millisecond)

		// A second registration is refused, as River refuses any.
		require.Panics(t, func() { client.AddWorkers(workers) })
	})

	// StopInterruptsNotifier checks that Stop, once its context ends,
	// cancels a running notifier, and that the interrupted attempt is recorded
	// and delivered later.
	t.Run("StopInterruptsNotifier", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		started := make(chan struct{}, 1)
		var attempt atomic.Int32
		notifier := &recordingNotifier{fn: func(ctx context.Context, msg *outbound.Message) error {
			if attempt.Add(1) == 1 {
				started <- struct{}{}
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}}
		config := &outbound.Config{Schema: schema, Notifier: notifier, RetryPolicy: fixedRetry(50 * time.Millisecond)}
		first, err := outbound.New(newTestPool(t, 10), config)
		require.NoError(t, err)
		require.NoError(t, first.Start(context.Background()))

		res := mustTrigger(ctx, t, first, 16, &outbound.TriggerOpts{TemplateID: "recovery"})
		<-started

		stopCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, first.Stop(stopCtx), context.DeadlineExceeded)

		msg, err := first.Message(ctx, res.Message.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.MessageStatusFailed, msg.Status)
		require.Contains(t, msg.LastError, "context canceled")

		// Another worker picks it up and delivers it.
		b := setup(t, working(), onSchema(schema), withConfig(config))
		waitForStatus(t, b.client, []uuid.UUID{msg.ID}, outbound.MessageStatusSent)
		require.Len(t, notifier.callsFor(msg.ID), 2)
	})

	// SmallPool runs the worker with the default MaxWorkers (100) on
	// a pool of four connections, with a notifier that queries the same pool: a
	// delivery holds no connection while its notifier runs, so the notifier's
	// queries wait only for the claims' and records' short statements, and no
	// attempt times out.
	t.Run("SmallPool", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		pool := newTestPool(t, 4)
		notifier := &recordingNotifier{fn: func(ctx context.Context, msg *outbound.Message) error {
			var one int
			return pool.QueryRow(ctx, "SELECT 1").Scan(&one)
		}}
		client, err := outbound.New(pool, &outbound.Config{Schema: schema, Notifier: notifier, MaxBatchSize: 200})
		require.NoError(t, err)
		require.NoError(t, client.Start(context.Background()))
		t.Cleanup(func() { require.NoError(t, client.Stop(context.Background())) })

		bulk := mustBulkTrigger(ctx, t, client, conversations(200), &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})
		for _, msg := range waitForStatus(t, client, messageIDs(bulk.Messages), outbound.MessageStatusSent) {
			require.Equal(t, 1, msg.Attempts, "no attempt timed out waiting for a connection")
		}
	})

	// UnrecordedSuccessIsRetried makes recording the first success
	// fail, as a lost connection at commit would: the job must not complete
	// without the message, and the retry must hand the notifier the same
	// message id, which is what lets a provider drop the repeat.
	t.Run("UnrecordedSuccessIsRetried", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		failFirstUpdateTo(t, schema, outbound.MessageStatusSent)

		notifier := &recordingNotifier{}
		b := setup(t, working(), onSchema(schema), withConfig(&outbound.Config{Notifier: notifier}))
		res := mustTrigger(ctx, t, b.client, 17, &outbound.TriggerOpts{TemplateID: "recovery"})

		msg := waitForStatus(t, b.client, []uuid.UUID{res.Message.ID}, outbound.MessageStatusSent)[0]
		calls := notifier.callsFor(msg.ID)
		require.Len(t, calls, 2, "the unrecorded success is delivered again")
		require.Equal(t, msg.ID, calls[0].Message.ID)
		require.Equal(t, msg.ID, calls[1].Message.ID)
		require.Equal(t, 1, calls[0].Message.Attempts)
		require.Equal(t, 2, calls[1].Message.Attempts)
		require.Equal(t, 2, msg.Attempts)

		// The first attempt left the job to be retried, with the error on it.
		var errs []string
		require.NoError(t, testPool.QueryRow(ctx, "SELECT array_agg(e->>'error') FROM "+
			table(schema, "river_job")+", jsonb_array_elements(to_jsonb(errors)) AS e WHERE id = $1", msg.JobID).Scan(&errs))
		require.Len(t, errs, 1)
		require.Contains(t, errs[0], "injected failure recording sent")
		require.Eventually(t, func() bool { return jobByID(t, schema, msg.JobID).State == "completed" }, waitCeiling, 20*time.Millisecond)
	})

	// SeparateRiverSchema works, cancels and reconciles with River's
	// tables in a schema of their own, as for a host that already runs River.
	t.Run("SeparateRiverSchema", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema, riverSchema := migratedSchemas(t)

		idle, err := outbound.New(testPool, &outbound.Config{Schema: schema, RiverSchema: riverSchema})
		require.NoError(t, err)
		cancelled := mustTrigger(ctx, t, idle, 1, &outbound.TriggerOpts{TemplateID: "recovery"})
		require.NoError(t, idle.CancelMessage(ctx, cancelled.Message.ID, nil))
		require.Equal(t, "cancelled", jobByID(t, riverSchema, cancelled.Message.JobID).State)
		n, err := idle.Reconcile(ctx)
		require.NoError(t, err)
		require.Zero(t, n)

		notifier := &recordingNotifier{}
		b := setup(t, working(), onSchema(schema), withConfig(&outbound.Config{RiverSchema: riverSchema, Notifier: notifier}))
		res := mustTrigger(ctx, t, b.client, 2, &outbound.TriggerOpts{TemplateID: "recovery"})
		msg := waitForStatus(t, b.client, []uuid.UUID{res.Message.ID}, outbound.MessageStatusSent)[0]
		require.Equal(t, "completed", jobByID(t, riverSchema, msg.JobID).State)
		require.Len(t, notifier.Calls(), 1)
	})

	// StartStopAgain checks that Stop before Start, a second Start and
	// a second Stop do nothing, and that a stopped worker can start again.
	t.Run("StartStopAgain", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		notifier := &recordingNotifier{}
		client, err := outbound.New(newTestPool(t, 10), &outbound.Config{Schema: schema, Notifier: notifier})
		require.NoError(t, err)

		require.NoError(t, client.Stop(ctx))
		require.NoError(t, client.Start(context.Background()))
		require.NoError(t, client.Start(context.Background()))
		require.NoError(t, client.Stop(ctx))
		require.NoError(t, client.Stop(ctx))

		// Triggered while stopped, delivered once started again.
		res := mustTrigger(ctx, t, client, 3, &outbound.TriggerOpts{TemplateID: "recovery"})
		require.NoError(t, client.Start(context.Background()))
		t.Cleanup(func() { require.NoError(t, client.Stop(context.Background())) })
		waitForStatus(t, client, []uuid.UUID{res.Message.ID}, outbound.MessageStatusSent)
		require.Len(t, notifier.Calls(), 1)
	})
}

func TestConfigDeliveryFields(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		config outbound.Config
		want   string
	}{
		{"negative max workers", outbound.Config{MaxWorkers: -1}, "Config.MaxWorkers must be between 1 and 10000"},
		{"too many max workers", outbound.Config{MaxWorkers: 10_001}, "Config.MaxWorkers must be between 1 and 10000"},
		{"negative notify timeout", outbound.Config{NotifyTimeout: -time.Second}, "Config.NotifyTimeout must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := outbound.New(testPool, &tc.config)
			require.ErrorIs(t, err, outbound.ErrInvalidArgument)
			require.ErrorContains(t, err, tc.want)
		})
	}
}
