package outbound_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
)

// hostRiver is a River client on the schema that only inserts and controls
// jobs, as River's UI or a host's code would.
func hostRiver(t *testing.T, schema string) *river.Client[pgx.Tx] {
	t.Helper()
	client, err := river.NewClient(riverpgxv5.New(testPool), &river.Config{Schema: schema})
	require.NoError(t, err)
	return client
}

// TestReconcile settles messages whose River job ended or is gone without a
// recorded result, by hand, in many batches, and periodically with the worker.
func TestReconcile(t *testing.T) {
	t.Parallel()

	t.Run("SettlesEndedJobs", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)
		jobs := hostRiver(t, b.schema)
		trigger := func(conversationID int64) *outbound.Message {
			res := mustTrigger(ctx, t, b.client, conversationID, &outbound.TriggerOpts{TemplateID: "recovery"})
			return res.Message
		}

		// A failed message whose job was then discarded with nothing recorded,
		// as when the last attempt's result could not be written.
		discarded := trigger(1)
		b.factory.setStatus(t, discarded.ID, outbound.MessageStatusFailed)
		b.factory.setLastError(t, discarded.ID, "smtp: 451")
		b.factory.setJobState(t, rivertype.JobStateDiscarded, discarded.JobID)
		// A job cancelled through River, as from River's UI.
		cancelled := trigger(2)
		_, err := jobs.JobCancel(ctx, cancelled.JobID)
		require.NoError(t, err)
		// A job deleted through River.
		deleted := trigger(3)
		_, err = jobs.JobDelete(ctx, deleted.JobID)
		require.NoError(t, err)
		// Messages whose jobs are fine are left alone.
		pending := trigger(4)
		sent := trigger(5)
		b.factory.setStatus(t, sent.ID, outbound.MessageStatusSent)
		b.factory.setJobState(t, rivertype.JobStateCompleted, sent.JobID)

		events := mustSubscribe(t, b.client, allEventKinds...)
		n, err := b.client.Reconcile(ctx)
		require.NoError(t, err)
		require.Equal(t, 3, n)

		got := byMessage(receiveEvents(t, events, 3))
		requireNoEvent(t, events)
		for _, want := range []struct {
			msg       *outbound.Message
			status    outbound.MessageStatus
			lastError string
			kind      outbound.EventKind
			reason    outbound.EventReason
		}{
			{discarded, outbound.MessageStatusDiscarded, "smtp: 451; delivery job was discarded without recording a result",
				outbound.EventKindMessageDiscarded, outbound.EventReasonJobDiscarded},
			{cancelled, outbound.MessageStatusCancelled, "delivery job was cancelled without recording a result",
				outbound.EventKindMessageCancelled, outbound.EventReasonJobCancelled},
			{deleted, outbound.MessageStatusDiscarded, "delivery job no longer exists",
				outbound.EventKindMessageDiscarded, outbound.EventReasonJobDeleted},
			{pending, outbound.MessageStatusPending, "", "", ""},
			{sent, outbound.MessageStatusSent, "", "", ""},
		} {
			msg, err := b.client.Message(ctx, want.msg.ID)
			require.NoError(t, err)
			require.Equal(t, want.status, msg.Status, "conversation %d", msg.ConversationID)
			require.Equal(t, string(want.status), msg.Metadata["status"])
			require.Equal(t, want.lastError, msg.LastError)
			if want.kind == "" {
				require.NotContains(t, got, msg.ID, "conversation %d was not settled", msg.ConversationID)
				continue
			}
			requireEvent(t, got[msg.ID], want.kind, want.reason, want.msg, 0, want.lastError)
		}

		// Settled messages free their keys; a second run finds nothing.
		for _, id := range []int64{1, 2, 3} {
			res := mustTrigger(ctx, t, b.client, id, &outbound.TriggerOpts{TemplateID: "recovery"})
			require.False(t, res.Duplicate, "conversation %d", id)
		}
		n, err = b.client.Reconcile(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
	})

	// ManyBatches settles more messages than one statement takes.
	t.Run("ManyBatches", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, withConfig(&outbound.Config{MaxBatchSize: 2500}))
		bulk := mustBulkTrigger(ctx, t, b.client, conversations(2500), &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})
		jobIDs := make([]int64, len(bulk.Messages))
		for i, m := range bulk.Messages {
			jobIDs[i] = m.JobID
		}
		b.factory.setJobState(t, rivertype.JobStateCancelled, jobIDs...)

		n, err := b.client.Reconcile(ctx)
		require.NoError(t, err)
		require.Equal(t, 2500, n)
		progress, err := b.client.EnvelopeProgress(ctx, bulk.Envelope.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.Progress{Cancelled: 2500}, *progress)
	})

	// RunsWithTheWorker cancels a job the way River's UI does; the
	// started worker's periodic reconcile settles its message without being
	// asked.
	t.Run("RunsWithTheWorker", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		idle, err := outbound.New(testPool, &outbound.Config{Schema: schema})
		require.NoError(t, err)
		res := mustTrigger(ctx, t, idle, 8, &outbound.TriggerOpts{TemplateID: "recovery"})
		_, err = hostRiver(t, schema).JobCancel(ctx, res.Message.JobID)
		require.NoError(t, err)

		notifier := &recordingNotifier{}
		b := setup(t, working(), onSchema(schema), withConfig(&outbound.Config{Notifier: notifier}))
		msg := waitForStatus(t, b.client, []uuid.UUID{res.Message.ID}, outbound.MessageStatusCancelled)[0]
		require.Equal(t, "delivery job was cancelled without recording a result", msg.LastError)
		require.Empty(t, notifier.Calls())
	})

	// UnrecordedLastAttempt makes recording the success of the last
	// attempt fail, as a lost connection would: River discards the job, and the
	// message is left in flight. Reconcile must not free its dedup key, since the
	// Notifier did deliver it: the message becomes unconfirmed, says why, and a
	// second trigger of the same key is a duplicate, not a second send.
	t.Run("UnrecordedLastAttempt", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		failFirstUpdateTo(t, schema, outbound.MessageStatusSent)

		notifier := &recordingNotifier{}
		b := setup(t, working(), onSchema(schema), withConfig(&outbound.Config{Notifier: notifier, MaxAttempts: 1}))
		events := mustSubscribe(t, b.client, allEventKinds...)
		res := mustTrigger(ctx, t, b.client, 18, &outbound.TriggerOpts{TemplateID: "recovery"})

		require.Eventually(t, func() bool { return jobByID(t, schema, res.Message.JobID).State == "discarded" },
			waitCeiling, 20*time.Millisecond)
		// The worker's own periodic Reconcile, which runs when its River
		// client starts leading, may settle the message before this one.
		n, err := b.client.Reconcile(ctx)
		require.NoError(t, err)
		require.LessOrEqual(t, n, 1)
		msg, err := b.client.Message(ctx, res.Message.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.MessageStatusUnconfirmed, msg.Status)
		require.Equal(t, "unconfirmed", msg.Metadata["status"])
		const lastError = "delivery job was discarded after an attempt that never recorded a result: the notifier may have delivered it"
		require.Equal(t, lastError, msg.LastError)
		requireEvent(t, receiveEvents(t, events, 1)[0], outbound.EventKindMessageUnconfirmed, outbound.EventReasonResultUnrecorded, res.Message, 1, lastError)
		require.Len(t, notifier.Calls(), 1)

		again := mustTrigger(ctx, t, b.client, 18, &outbound.TriggerOpts{TemplateID: "recovery"})
		require.True(t, again.Duplicate, "an unconfirmed message keeps its dedup key")
		require.Equal(t, msg.ID, again.Message.ID)
		err = b.client.CancelMessage(ctx, msg.ID, nil)
		require.ErrorIs(t, err, outbound.ErrNotCancellable)
		require.ErrorContains(t, err, "is unconfirmed")

		n, err = b.client.Reconcile(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
		require.Len(t, notifier.Calls(), 1, "an unconfirmed message is never attempted again")
	})

	// MatchesJobsByWhatTheyAre: a message written while the client's River
	// schema was another records a job id that, in the River schema
	// configured later, names the host's own jobs. Reconcile used to take
	// such a job for the message's, find it live, and leave the message
	// pending for ever; a cancel would cancel the host's job. A job is now
	// the message's only if it is a delivery job for that message.
	t.Run("MatchesJobsByWhatTheyAre", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema, firstRiver, hostRiverSchema := newSchemaName(), newSchemaName(), newSchemaName()
		t.Cleanup(func() { dropSchema(schema); dropSchema(firstRiver); dropSchema(hostRiverSchema) })
		require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema, RiverSchema: firstRiver}))
		misconfigured, err := outbound.New(testPool, &outbound.Config{Schema: schema, RiverSchema: firstRiver})
		require.NoError(t, err)
		stranded := mustTrigger(ctx, t, misconfigured, 1, &outbound.TriggerOpts{TemplateID: "recovery"}).Message
		cancelled := mustTrigger(ctx, t, misconfigured, 2, &outbound.TriggerOpts{TemplateID: "recovery"}).Message

		// The host's River holds, under those two ids, a job of its own and
		// another message's delivery job.
		require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema, RiverSchema: hostRiverSchema}))
		host := hostRiver(t, hostRiverSchema)
		own, err := host.Insert(ctx, hostSyncArgs{Account: "acme"}, nil)
		require.NoError(t, err)
		other, err := host.Insert(ctx, outbound.DeliveryArgs{MessageID: uuid.New(), ConversationID: 2, TemplateID: "recovery"}, nil)
		require.NoError(t, err)
		for _, move := range []struct{ from, to int64 }{{own.Job.ID, -stranded.JobID}, {other.Job.ID, -cancelled.JobID}, {-stranded.JobID, stranded.JobID}, {-cancelled.JobID, cancelled.JobID}} {
			_, err := testPool.Exec(ctx, "UPDATE "+table(hostRiverSchema, "river_job")+" SET id = $2 WHERE id = $1", move.from, move.to)
			require.NoError(t, err)
		}

		client, err := outbound.New(testPool, &outbound.Config{Schema: schema, RiverSchema: hostRiverSchema})
		require.NoError(t, err)
		require.NoError(t, client.CancelMessage(ctx, cancelled.ID, nil))
		n, err := client.Reconcile(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		msg, err := client.Message(ctx, stranded.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.MessageStatusDiscarded, msg.Status, "a host's job is not the message's")
		require.Equal(t, "delivery job no longer exists", msg.LastError)
		again := mustTrigger(ctx, t, client, 1, &outbound.TriggerOpts{TemplateID: "recovery"})
		require.False(t, again.Duplicate, "the stranded message's dedup key is free")
		for _, id := range []int64{stranded.JobID, cancelled.JobID} {
			require.Equal(t, "available", jobByID(t, hostRiverSchema, id).State, "the host's job %d was touched", id)
		}
	})

	// LateSuccessOnTheLastAttempt: a Notifier call on the message's last
	// attempt runs past RescueStuckJobsAfter, its claim renewed, and
	// River's rescuer discards the job. Reconcile used to mark the message
	// unconfirmed then, and the success the call returned was lost. While
	// the claim holds, Reconcile now leaves the message alone, and the
	// success is recorded: sent, though its job has ended.
	t.Run("LateSuccessOnTheLastAttempt", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		release := make(chan struct{})
		var released sync.Once
		notifier := newGateNotifier(func(context.Context, *outbound.Message) error {
			<-release // ignores its context
			return nil
		})
		notifier.Open()
		b := setup(t, working(), withConfig(&outbound.Config{Notifier: notifier, NotifyTimeout: time.Second, MaxAttempts: 1}))
		// Registered after setup's, so run before the worker stops.
		t.Cleanup(func() { released.Do(func() { close(release) }) })
		res := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "recovery"})
		notifier.waitInFlight(t, 1)

		// The call has run, by its job's clock, an hour, far past
		// RescueStuckJobsAfter. River's rescuer runs when its client becomes
		// the leader: the leadership is made vacant, and a second client
		// started, so that the leader's first run comes now.
		_, err := testPool.Exec(ctx, "UPDATE "+table(b.schema, "river_job")+" SET attempted_at = attempted_at - interval '1 hour' WHERE id = $1",
			res.Message.JobID)
		require.NoError(t, err)
		_, err = testPool.Exec(ctx, "DELETE FROM "+table(b.schema, "river_leader"))
		require.NoError(t, err)
		setup(t, working(), onSchema(b.schema), withConfig(&outbound.Config{Notifier: notifier, NotifyTimeout: time.Second, MaxAttempts: 1}))
		require.Eventually(t, func() bool { return jobByID(t, b.schema, res.Message.JobID).State == "discarded" },
			waitCeiling, 20*time.Millisecond, "River's rescuer did not discard the job of the last attempt")

		n, err := b.client.Reconcile(ctx)
		require.NoError(t, err)
		require.Zero(t, n, "Reconcile settled a message whose attempt is alive")
		msg, err := b.client.Message(ctx, res.Message.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.MessageStatusDelivering, msg.Status)

		released.Do(func() { close(release) })
		msg = waitForStatus(t, b.client, []uuid.UUID{res.Message.ID}, outbound.MessageStatusSent, outbound.MessageStatusUnconfirmed)[0]
		require.Equal(t, outbound.MessageStatusSent, msg.Status, "the late success was recorded")
		require.Equal(t, 1, msg.Attempts)
		require.Equal(t, 1, notifier.CallsFor(msg.ID))
		require.Equal(t, "discarded", jobByID(t, b.schema, res.Message.JobID).State, "River's record of the job stays as its rescuer left it")
		n, err = b.client.Reconcile(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
	})
}

// hostSyncArgs are a host's own River job, beside the library's.
type hostSyncArgs struct {
	Account string `json:"account"`
}

func (hostSyncArgs) Kind() string { return "host_sync" }
