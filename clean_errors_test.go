package outbound_test

import (
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// TestTimesOutOfRange: a time no store of it holds is refused, naming the
// field; a time before PostgreSQL's range is past, so now. Before, both
// reached the database raw: "timestamp out of range (SQLSTATE 22008)".
func TestTimesOutOfRange(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := setup(t)
	farFuture := time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC)
	longPast := time.Date(-4999, 1, 1, 0, 0, 0, 0, time.UTC) // 5000 BC

	_, err := b.client.Trigger(ctx, 1, &outbound.TriggerOpts{TemplateID: "t", ScheduledAt: farFuture})
	requireInvalidArgument(t, err, "TriggerOpts.ScheduledAt")
	require.ErrorContains(t, err, "must be before the year 10000, got the year 300000")
	_, err = b.client.BulkTrigger(ctx, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", ScheduledAt: farFuture})
	requireInvalidArgument(t, err, "BulkTriggerOpts.ScheduledAt")
	_, err = b.client.BulkTrigger(ctx, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b",
		Recipients: map[int64]outbound.BulkRecipient{2: {ScheduledAt: farFuture}}})
	requireInvalidArgument(t, err, "BulkTriggerOpts.Recipients[2].ScheduledAt")
	require.Equal(t, rowCounts{}, countAll(t, b.schema), "nothing was written")

	before := time.Now()
	single := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t", ScheduledAt: longPast})
	requireDueNow(t, b, single.Message, before)

	envelopeID := uuid.Must(uuid.NewV7())
	opts := func() *outbound.BulkTriggerOpts {
		return &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", ScheduledAt: longPast, EnvelopeID: envelopeID,
			Recipients: map[int64]outbound.BulkRecipient{3: {ScheduledAt: longPast}}}
	}
	bulk := mustBulkTrigger(ctx, t, b.client, []int64{2, 3}, opts())
	for _, m := range bulk.Messages {
		requireDueNow(t, b, m, before)
	}
	again := mustBulkTrigger(ctx, t, b.client, []int64{2, 3}, opts())
	require.True(t, again.Replayed, "the same long-past times replay")
}

// requireDueNow checks that a message and its job were due when triggered.
func requireDueNow(t *testing.T, b *testBundle, msg *outbound.Message, before time.Time) {
	t.Helper()
	require.WithinRange(t, msg.ScheduledAt, before.Add(-time.Second), time.Now().Add(time.Second), "the message is due now")
	require.WithinRange(t, jobByID(t, b.schema, msg.JobID).ScheduledAt, before.Add(-time.Second), time.Now().Add(time.Second), "the job is due now")
}

// TestActorControlCharacters: an actor with control characters, which
// would forge or hide what a log or an audit trail writes beside it, is
// refused naming the field, and nothing is written or cancelled.
func TestActorControlCharacters(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := setup(t, audited())
	pending := mustTrigger(ctx, t, b.client, 9, &outbound.TriggerOpts{TemplateID: "kept", Actor: "Zoë 🌍 <ops@example.com>"})
	counts := countAll(t, b.schema)
	for _, actor := range []string{"ops\x1b[31mroot\x1b[0m", "ops\r\nX-Injected: yes", "tab\there", "del\x7f", "c1\u0085", "admin\u202egnp.exe"} {
		_, err := b.client.Trigger(ctx, 1, &outbound.TriggerOpts{TemplateID: "t", Actor: actor})
		requireInvalidArgument(t, err, "TriggerOpts.Actor")
		require.ErrorContains(t, err, "must not contain control characters")
		require.NotContains(t, err.Error(), actor[:3], "the message never repeats the actor")

		_, err = b.client.BulkTrigger(ctx, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", Actor: actor})
		requireInvalidArgument(t, err, "BulkTriggerOpts.Actor")

		err = b.client.CancelMessage(ctx, pending.Message.ID, &outbound.CancelOpts{Actor: actor})
		requireInvalidArgument(t, err, "CancelOpts.Actor")
		_, err = b.client.CancelEnvelope(ctx, uuid.New(), &outbound.CancelOpts{Actor: actor})
		requireInvalidArgument(t, err, "CancelOpts.Actor")
	}
	require.Equal(t, counts, countAll(t, b.schema), "nothing was written")
	requireStatus(ctx, t, b.client, pending.Message.ID, outbound.MessageStatusPending)
}

// TestReplayedRefusal: an envelope id refused over the cap replays that
// refusal after the cap is raised, and says so: it is a replay, of a
// refusal under the cap of then, and a new envelope id submits the bulk.
func TestReplayedRefusal(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := setup(t, withConfig(&outbound.Config{MaxBatchSize: 2}))
	opts := &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", EnvelopeID: uuid.Must(uuid.NewV7())}
	ids := []int64{1, 2, 3}
	_, err := b.client.BulkTrigger(ctx, ids, opts)
	var tooLarge *outbound.BatchTooLargeError
	require.ErrorAs(t, err, &tooLarge)
	require.False(t, tooLarge.Replayed)
	require.ErrorContains(t, err, "raise MaxBatchSize")

	require.NoError(t, b.client.SetMaxBatchSize(10))
	_, err = b.client.BulkTrigger(ctx, ids, opts)
	require.ErrorIs(t, err, outbound.ErrBatchTooLarge)
	require.ErrorAs(t, err, &tooLarge)
	require.True(t, tooLarge.Replayed)
	require.Equal(t, opts.EnvelopeID, tooLarge.EnvelopeID)
	require.Equal(t, 2, tooLarge.Cap, "the cap of then")
	require.EqualError(t, err, "outbound: envelope "+opts.EnvelopeID.String()+
		" was refused when first requested (batch size 3 exceeded cap 2), and this call replays that refusal whatever the cap is now; to submit the bulk, use a new envelope id")

	opts.EnvelopeID = uuid.Must(uuid.NewV7())
	res := mustBulkTrigger(ctx, t, b.client, ids, opts)
	require.Len(t, res.Messages, 3)
}
