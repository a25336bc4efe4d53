package outbound_test

import (
	"context"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func messageExists(tb testing.TB, client *outbound.Client, id uuid.UUID) bool {
	tb.Helper()
	_, err := client.Message(context.Background(), id)
	if err != nil {
		require.ErrorIs(tb, err, outbound.ErrNotFound)
		return false
	}
	return true
}

func envelopeExists(tb testing.TB, client *outbound.Client, id uuid.UUID) bool {
	tb.Helper()
	_, err := client.Envelope(context.Background(), id)
	if err != nil {
		require.ErrorIs(tb, err, outbound.ErrNotFound)
		return false
	}
	return true
}

func TestPrune(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour

	t.Run("DeletesFinalRowsPastTheirAgeOnly", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, audited(), withConfig(&outbound.Config{MaxBatchSize: 3}))
		trigger := func(conversation int64) uuid.UUID {
			res := mustTrigger(ctx, t, b.client, conversation, &outbound.TriggerOpts{TemplateID: "t"})
			return res.Message.ID
		}

		// Old final messages: deleted.
		gone := []uuid.UUID{
			b.factory.backdateMessage(t, trigger(1), outbound.MessageStatusSent, 40*day),
			b.factory.backdateMessage(t, trigger(2), outbound.MessageStatusCancelled, 40*day),
			b.factory.backdateMessage(t, trigger(3), outbound.MessageStatusDiscarded, 40*day),
			b.factory.backdateMessage(t, trigger(4), outbound.MessageStatusUnconfirmed, 40*day),
		}
		// Old messages still awaiting a result, and young final ones: kept.
		kept := []uuid.UUID{
			b.factory.backdateMessage(t, trigger(5), outbound.MessageStatusPending, 40*day),
			b.factory.backdateMessage(t, trigger(6), outbound.MessageStatusFailed, 40*day),
			b.factory.backdateMessage(t, trigger(7), outbound.MessageStatusDelivering, 40*day),
			b.factory.backdateMessage(t, trigger(8), outbound.MessageStatusSent, 10*day),
			trigger(9),
		}

		// An envelope whose messages all go, one with a message left, and
		// refusals old and young.
		emptied := mustBulkTrigger(ctx, t, b.client, []int64{10, 11}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
		for _, m := range emptied.Messages {
			gone = append(gone, b.factory.backdateMessage(t, m.ID, outbound.MessageStatusSent, 40*day))
		}
		b.factory.backdateEnvelope(t, emptied.Envelope.ID, 40*day)
		halfDone := mustBulkTrigger(ctx, t, b.client, []int64{12, 13}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
		gone = append(gone, b.factory.backdateMessage(t, halfDone.Messages[0].ID, outbound.MessageStatusSent, 40*day))
		kept = append(kept, b.factory.backdateMessage(t, halfDone.Messages[1].ID, outbound.MessageStatusFailed, 40*day))
		b.factory.backdateEnvelope(t, halfDone.Envelope.ID, 40*day)
		refuse := func(age time.Duration) uuid.UUID {
			_, err := b.client.BulkTrigger(ctx, []int64{20, 21, 22, 23}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
			var tooLarge *outbound.BatchTooLargeError
			require.ErrorAs(t, err, &tooLarge)
			b.factory.backdateEnvelope(t, tooLarge.EnvelopeID, age)
			return tooLarge.EnvelopeID
		}
		oldRefusal, youngRefusal := refuse(40*day), refuse(10*day)
		// Where the two bulks' shares of a rate-limited key began, as a
		// claim writes it: pruned with its envelope.
		for _, id := range []uuid.UUID{emptied.Envelope.ID, halfDone.Envelope.ID} {
			_, err := testPool.Exec(ctx, "INSERT INTO "+table(b.schema, "rate_limit_shares")+
				" (key, priority, bulk_envelope_id, base) VALUES ('sms', 2, $1, now())", id)
			require.NoError(t, err)
		}

		// Audit events: one of each kind so far, moved back 40 days, and a
		// young one.
		_, err := testPool.Exec(ctx, "UPDATE "+table(b.schema, "audit_events")+" SET occurred_at = now() - interval '40 days'")
		require.NoError(t, err)
		trigger(30)
		events := countRows(t, b.schema, "audit_events")

		res, err := b.client.Prune(ctx, &outbound.PruneParams{OlderThan: 30 * day})
		require.NoError(t, err)
		require.Equal(t, &outbound.PruneResult{Messages: len(gone), Envelopes: 2}, res)
		for _, id := range gone {
			require.False(t, messageExists(t, b.client, id))
		}
		for _, id := range kept {
			require.True(t, messageExists(t, b.client, id))
		}
		require.False(t, envelopeExists(t, b.client, emptied.Envelope.ID))
		require.True(t, envelopeExists(t, b.client, halfDone.Envelope.ID), "a message of it is left")
		rows, err := testPool.Query(ctx, "SELECT bulk_envelope_id FROM "+table(b.schema, "rate_limit_shares"))
		require.NoError(t, err)
		shares, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		require.NoError(t, err)
		require.Equal(t, []uuid.UUID{halfDone.Envelope.ID}, shares, "a pruned envelope's rate limit share goes with it")
		require.False(t, envelopeExists(t, b.client, oldRefusal))
		require.True(t, envelopeExists(t, b.client, youngRefusal))
		require.Equal(t, events, countRows(t, b.schema, "audit_events"), "audit events only when asked")

		res, err = b.client.Prune(ctx, &outbound.PruneParams{AuditEventsOlderThan: 30 * day})
		require.NoError(t, err)
		require.Equal(t, &outbound.PruneResult{AuditEvents: events - 1}, res)
		require.Equal(t, 1, countRows(t, b.schema, "audit_events"))

		// Nothing is left to prune: a second run deletes nothing.
		res, err = b.client.Prune(ctx, &outbound.PruneParams{OlderThan: 30 * day, AuditEventsOlderThan: 30 * day})
		require.NoError(t, err)
		require.Equal(t, &outbound.PruneResult{}, res)
	})

	t.Run("SentMessagesWaitForTheirDedupWindow", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t) // a 24h window
		res := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t"})
		inWindow := b.factory.backdateMessage(t, res.Message.ID, outbound.MessageStatusSent, 2*time.Hour)
		res = mustTrigger(ctx, t, b.client, 2, &outbound.TriggerOpts{TemplateID: "t"})
		cancelled := b.factory.backdateMessage(t, res.Message.ID, outbound.MessageStatusCancelled, 2*time.Hour)

		pruned, err := b.client.Prune(ctx, &outbound.PruneParams{OlderThan: time.Hour})
		require.NoError(t, err)
		require.Equal(t, 1, pruned.Messages)
		require.True(t, messageExists(t, b.client, inWindow), "it still holds its dedup key")
		require.False(t, messageExists(t, b.client, cancelled))
	})

	t.Run("ANegativeWindowDoesNotKeepTheRow", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, withConfig(&outbound.Config{DedupWindow: -1}))
		res := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t"})
		old := b.factory.backdateMessage(t, res.Message.ID, outbound.MessageStatusSent, 40*day)
		pruned, err := b.client.Prune(ctx, &outbound.PruneParams{OlderThan: 30 * day})
		require.NoError(t, err)
		require.Equal(t, 1, pruned.Messages)
		require.False(t, messageExists(t, b.client, old))
	})

	t.Run("ManyBatches", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)
		// 2,500 old cancelled messages with time-ordered ids, as the
		// library would have made them, and 500 old pending ones among them.
		seeds := make([]messageRow, 3000)
		for i := range seeds {
			seeds[i] = messageRow{ConversationID: int64(i + 1), Status: outbound.MessageStatusCancelled, CreatedAt: time.Now().Add(-60*day + time.Duration(i)*time.Millisecond)}
			if i%6 == 0 {
				seeds[i].Status = outbound.MessageStatusPending
			}
		}
		b.factory.insertMessages(t, seeds)
		res, err := b.client.Prune(ctx, &outbound.PruneParams{OlderThan: 30 * day})
		require.NoError(t, err)
		require.Equal(t, 2500, res.Messages)
		require.Equal(t, 500, countRows(t, b.schema, "messages"))
	})

	t.Run("RetentionRunsItPeriodically", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		plain, err := outbound.New(testPool, &outbound.Config{Schema: migratedSchema(t)})
		require.NoError(t, err)
		require.Len(t, plain.PeriodicJobs(), 1, "only reconcile without retention")

		schema := migratedSchema(t)
		seed, err := outbound.New(testPool, &outbound.Config{Schema: schema})
		require.NoError(t, err)
		res := mustTrigger(ctx, t, seed, 1, &outbound.TriggerOpts{TemplateID: "t"})
		old := newFactory(schema).backdateMessage(t, res.Message.ID, outbound.MessageStatusCancelled, 40*day)
		res = mustTrigger(ctx, t, seed, 2, &outbound.TriggerOpts{TemplateID: "t"})
		young := res.Message.ID

		b := setup(t, working(), onSchema(schema), withConfig(&outbound.Config{Retention: 30 * day}))
		require.Len(t, b.client.PeriodicJobs(), 2)
		// The job runs when the client starts, then every PruneInterval.
		require.Eventually(t, func() bool { return !messageExists(t, b.client, old) }, waitCeiling, 50*time.Millisecond)
		require.True(t, messageExists(t, b.client, young))
	})
}
