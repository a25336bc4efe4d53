package outbound_test

import (
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
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

func TestReconcile(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := setup(t, nil)
	jobs := hostRiver(t, b.schema)
	trigger := func(conversationID int64) *outbound.Message {
		res, err := b.client.Trigger(ctx, conversationID, &outbound.TriggerOpts{TemplateID: "recovery"})
		require.NoError(t, err)
		return res.Message
	}
	exec := func(sql string, args ...any) {
		_, err := testPool.Exec(ctx, sql, args...)
		require.NoError(t, err)
	}

	// A failed message whose job was then discarded with nothing recorded,
	// as when the last attempt's result could not be written.
	discarded := trigger(1)
	exec("UPDATE "+table(b.schema, "messages")+" SET status = 'failed', last_error = 'smtp: 451', metadata = jsonb_set(metadata, '{status}', '\"failed\"') WHERE id = $1", discarded.ID)
	exec("UPDATE "+table(b.schema, "river_job")+" SET state = 'discarded', finalized_at = now() WHERE id = $1", discarded.JobID)
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
	exec("UPDATE "+table(b.schema, "messages")+" SET status = 'sent', sent_at = now(), metadata = jsonb_set(metadata, '{status}', '\"sent\"') WHERE id = $1", sent.ID)
	exec("UPDATE "+table(b.schema, "river_job")+" SET state = 'completed', finalized_at = now() WHERE id = $1", sent.JobID)

	n, err := b.client.Reconcile(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, n)

	for _, want := range []struct {
		msg       *outbound.Message
		status    outbound.MessageStatus
		lastError string
	}{
		{discarded, outbound.MessageStatusDiscarded, "smtp: 451; delivery job was discarded without recording a result"},
		{cancelled, outbound.MessageStatusCancelled, "delivery job was cancelled without recording a result"},
		{deleted, outbound.MessageStatusDiscarded, "delivery job no longer exists"},
		{pending, outbound.MessageStatusPending, ""},
		{sent, outbound.MessageStatusSent, ""},
	} {
		msg, err := b.client.Message(ctx, want.msg.ID)
		require.NoError(t, err)
		require.Equal(t, want.status, msg.Status, "conversation %d", msg.ConversationID)
		require.Equal(t, string(want.status), msg.Metadata["status"])
		require.Equal(t, want.lastError, msg.LastError)
	}

	// Settled messages free their keys; a second run finds nothing.
	for _, id := range []int64{1, 2, 3} {
		res, err := b.client.Trigger(ctx, id, &outbound.TriggerOpts{TemplateID: "recovery"})
		require.NoError(t, err)
		require.False(t, res.Duplicate, "conversation %d", id)
	}
	n, err = b.client.Reconcile(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}

// TestReconcileManyBatches settles more messages than one statement takes.
func TestReconcileManyBatches(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := setup(t, &outbound.Config{MaxBatchSize: 2500})
	bulk, err := b.client.BulkTrigger(ctx, conversations(2500), &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})
	require.NoError(t, err)
	_, err = testPool.Exec(ctx, "UPDATE "+table(b.schema, "river_job")+" SET state = 'cancelled', finalized_at = now()")
	require.NoError(t, err)

	n, err := b.client.Reconcile(ctx)
	require.NoError(t, err)
	require.Equal(t, 2500, n)
	progress, err := b.client.EnvelopeProgress(ctx, bulk.Envelope.ID)
	require.NoError(t, err)
	require.Equal(t, outbound.Progress{Cancelled: 2500}, *progress)
}

// TestReconcileRunsWithTheWorker cancels a job the way River's UI does; the
// started worker's periodic reconcile settles its message without being
// asked.
func TestReconcileRunsWithTheWorker(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	schema := migratedSchema(t)
	idle, err := outbound.New(testPool, &outbound.Config{Schema: schema})
	require.NoError(t, err)
	res, err := idle.Trigger(ctx, 8, &outbound.TriggerOpts{TemplateID: "recovery"})
	require.NoError(t, err)
	_, err = hostRiver(t, schema).JobCancel(ctx, res.Message.JobID)
	require.NoError(t, err)

	notifier := &recordingNotifier{}
	b := setupWorkingOn(t, schema, &outbound.Config{Notifier: notifier})
	msg := waitForStatus(t, b.client, []uuid.UUID{res.Message.ID}, outbound.MessageStatusCancelled)[0]
	require.Equal(t, "delivery job was cancelled without recording a result", msg.LastError)
	require.Empty(t, notifier.Calls())
}

// TestReconcileUnrecordedLastAttempt makes recording the success of the last
// attempt fail, as a lost connection would: River discards the job, and the
// message is left in flight. Reconcile must not free its dedup key, since the
// Notifier did deliver it: the message becomes unconfirmed, says why, and a
// second trigger of the same key is a duplicate, not a second send.
func TestReconcileUnrecordedLastAttempt(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	schema := migratedSchema(t)
	failFirstUpdateTo(t, schema, outbound.MessageStatusSent)

	notifier := &recordingNotifier{}
	b := setupWorkingOn(t, schema, &outbound.Config{Notifier: notifier, MaxAttempts: 1})
	res, err := b.client.Trigger(ctx, 18, &outbound.TriggerOpts{TemplateID: "recovery"})
	require.NoError(t, err)

	require.Eventually(t, func() bool { return jobByID(t, schema, res.Message.JobID).State == "discarded" },
		30*time.Second, 20*time.Millisecond)
	msg, err := b.client.Message(ctx, res.Message.ID)
	require.NoError(t, err)
	require.Equal(t, outbound.MessageStatusDelivering, msg.Status, "the attempt's result was not recorded")

	n, err := b.client.Reconcile(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	msg, err = b.client.Message(ctx, res.Message.ID)
	require.NoError(t, err)
	require.Equal(t, outbound.MessageStatusUnconfirmed, msg.Status)
	require.Equal(t, "unconfirmed", msg.Metadata["status"])
	require.Equal(t, "delivery job was discarded after an attempt that never recorded a result: the notifier may have delivered it", msg.LastError)
	require.Len(t, notifier.Calls(), 1)

	again, err := b.client.Trigger(ctx, 18, &outbound.TriggerOpts{TemplateID: "recovery"})
	require.NoError(t, err)
	require.True(t, again.Duplicate, "an unconfirmed message keeps its dedup key")
	require.Equal(t, msg.ID, again.Message.ID)
	err = b.client.CancelMessage(ctx, msg.ID)
	require.ErrorIs(t, err, outbound.ErrNotCancellable)
	require.ErrorContains(t, err, "is unconfirmed")

	n, err = b.client.Reconcile(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Len(t, notifier.Calls(), 1, "an unconfirmed message is never attempted again")
}
