package outbound_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// keyHolders counts the messages of one dedup key, and those holding it.
func keyHolders(tb testing.TB, schema string, conversationID int64, templateID string) (all, holding int) {
	tb.Helper()
	require.NoError(tb, testPool.QueryRow(context.Background(), `
SELECT count(*), count(*) FILTER (WHERE holds_dedup_key) FROM `+table(schema, "messages")+`
WHERE conversation_id = $1 AND template_id = $2`, conversationID, templateID).Scan(&all, &holding))
	return all, holding
}

func TestDedupWindow(t *testing.T) {
	t.Parallel()

	t.Run("SentHoldsItsKeyForTheWindowThenFreesIt", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t) // the default window, 24h
		first := mustTrigger(ctx, t, b.client, 42, &outbound.TriggerOpts{TemplateID: "recovery", Content: "first"})

		// Sent 23h ago: inside the window, a duplicate; the new content is
		// not written.
		b.factory.ageMessage(t, first.Message.ID, outbound.MessageStatusSent, 23*time.Hour)
		again := mustTrigger(ctx, t, b.client, 42, &outbound.TriggerOpts{TemplateID: "recovery", Content: "second"})
		require.True(t, again.Duplicate)
		require.Equal(t, first.Message.ID, again.Message.ID)
		require.Equal(t, "first", again.Message.Content)

		// Sent 25h ago: past the window, a new message with the new content,
		// and a job to deliver it.
		b.factory.ageMessage(t, first.Message.ID, outbound.MessageStatusSent, 25*time.Hour)
		later := mustTrigger(ctx, t, b.client, 42, &outbound.TriggerOpts{TemplateID: "recovery", Content: "second"})
		require.False(t, later.Duplicate)
		require.NotEqual(t, first.Message.ID, later.Message.ID)
		require.Equal(t, "second", later.Message.Content)
		require.Equal(t, outbound.MessageStatusPending, later.Message.Status)
		require.Equal(t, "available", jobByID(t, b.schema, later.Message.JobID).State, "a job for the new message")
		stored, err := b.client.Message(ctx, later.Message.ID)
		require.NoError(t, err)
		require.Equal(t, later.Message, stored)

		// The old message is kept, still sent; the new one holds the key.
		old, err := b.client.Message(ctx, first.Message.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.MessageStatusSent, old.Status)
		all, holding := keyHolders(t, b.schema, 42, "recovery")
		require.Equal(t, 2, all)
		require.Equal(t, 1, holding)
		require.Equal(t, 2, countRows(t, b.schema, "river_job"))

		// And the new message holds the key in its turn.
		third := mustTrigger(ctx, t, b.client, 42, &outbound.TriggerOpts{TemplateID: "recovery", Content: "third"})
		require.True(t, third.Duplicate)
		require.Equal(t, later.Message.ID, third.Message.ID)
	})

	t.Run("UnsettledMessagesHoldTheirKeyPastTheWindow", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, withConfig(&outbound.Config{DedupWindow: time.Minute}))
		for i, status := range []outbound.MessageStatus{outbound.MessageStatusPending, outbound.MessageStatusDelivering, outbound.MessageStatusFailed} {
			conversation := int64(100 + i)
			first := mustTrigger(ctx, t, b.client, conversation, &outbound.TriggerOpts{TemplateID: "t"})
			b.factory.ageMessage(t, first.Message.ID, status, 48*time.Hour)
			again := mustTrigger(ctx, t, b.client, conversation, &outbound.TriggerOpts{TemplateID: "t"})
			require.True(t, again.Duplicate, status)
			require.Equal(t, first.Message.ID, again.Message.ID, status)
		}
	})

	t.Run("UnconfirmedHoldsItsKeyForTheWindow", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)
		first := mustTrigger(ctx, t, b.client, 7, &outbound.TriggerOpts{TemplateID: "t"})
		b.factory.ageMessage(t, first.Message.ID, outbound.MessageStatusUnconfirmed, time.Hour)
		again := mustTrigger(ctx, t, b.client, 7, &outbound.TriggerOpts{TemplateID: "t"})
		require.True(t, again.Duplicate)

		b.factory.ageMessage(t, first.Message.ID, outbound.MessageStatusUnconfirmed, 25*time.Hour)
		later := mustTrigger(ctx, t, b.client, 7, &outbound.TriggerOpts{TemplateID: "t"})
		require.False(t, later.Duplicate)
	})

	t.Run("CancelledAndDiscardedFreeTheirKeyAtOnce", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, withConfig(&outbound.Config{DedupWindow: -1}))
		for i, status := range []outbound.MessageStatus{outbound.MessageStatusCancelled, outbound.MessageStatusDiscarded} {
			conversation := int64(200 + i)
			first := mustTrigger(ctx, t, b.client, conversation, &outbound.TriggerOpts{TemplateID: "t"})
			b.factory.ageMessage(t, first.Message.ID, status, 0)
			again := mustTrigger(ctx, t, b.client, conversation, &outbound.TriggerOpts{TemplateID: "t"})
			require.False(t, again.Duplicate, status)
		}
	})

	t.Run("NegativeKeepsTheKeyForTheRowsLife", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, withConfig(&outbound.Config{DedupWindow: -1}))
		first := mustTrigger(ctx, t, b.client, 9, &outbound.TriggerOpts{TemplateID: "t"})
		b.factory.ageMessage(t, first.Message.ID, outbound.MessageStatusSent, 10*365*24*time.Hour)
		again := mustTrigger(ctx, t, b.client, 9, &outbound.TriggerOpts{TemplateID: "t", Content: "new"})
		require.True(t, again.Duplicate)
		require.Equal(t, first.Message.ID, again.Message.ID)
	})

	t.Run("DeliveredAgainAfterAShortWindow", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		notifier := &recordingNotifier{}
		// A window no machine outruns; the sent message is then moved past
		// it in the database rather than waited for.
		const window = time.Hour
		b := setup(t, working(), withConfig(&outbound.Config{DedupWindow: window, Notifier: notifier}))
		first := mustTrigger(ctx, t, b.client, 5, &outbound.TriggerOpts{TemplateID: "t", Content: "one"})
		waitForStatus(t, b.client, []uuid.UUID{first.Message.ID}, outbound.MessageStatusSent)

		dup := mustTrigger(ctx, t, b.client, 5, &outbound.TriggerOpts{TemplateID: "t", Content: "two"})
		require.True(t, dup.Duplicate, "inside the window")

		b.factory.ageMessage(t, first.Message.ID, outbound.MessageStatusSent, window+time.Second)
		second := mustTrigger(ctx, t, b.client, 5, &outbound.TriggerOpts{TemplateID: "t", Content: "two"})
		require.False(t, second.Duplicate)
		waitForStatus(t, b.client, []uuid.UUID{second.Message.ID}, outbound.MessageStatusSent)

		var contents []string
		for _, call := range notifier.Calls() {
			contents = append(contents, call.Message.Content)
		}
		require.Equal(t, []string{"one", "two"}, contents, "each message delivered once")
	})

	t.Run("SixteenRacersAfterTheWindowMakeOneMessage", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)
		const racers, rounds = 16, 5
		for round := range rounds {
			conversation := int64(1000 + round)
			first := mustTrigger(ctx, t, b.client, conversation, &outbound.TriggerOpts{TemplateID: "race"})
			b.factory.ageMessage(t, first.Message.ID, outbound.MessageStatusSent, 25*time.Hour)

			results := make([]*outbound.TriggerResult, racers)
			errs := make([]error, racers)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range racers {
				wg.Go(func() {
					<-start
					results[i], errs[i] = b.client.Trigger(ctx, conversation, &outbound.TriggerOpts{TemplateID: "race", Content: fmt.Sprint("racer ", i)})
				})
			}
			close(start)
			wg.Wait()

			var winners []*outbound.Message
			for i := range racers {
				require.NoError(t, errs[i])
				if !results[i].Duplicate {
					winners = append(winners, results[i].Message)
				}
			}
			require.Len(t, winners, 1, "round %d: exactly one new message", round)
			for i := range racers {
				require.Equal(t, winners[0].ID, results[i].Message.ID, "round %d: every racer sees the winner", round)
			}
			all, holding := keyHolders(t, b.schema, conversation, "race")
			require.Equal(t, 2, all, "round %d: the old message and the winner", round)
			require.Equal(t, 1, holding)
		}
		require.Equal(t, 2*rounds, countRows(t, b.schema, "river_job"), "no orphaned job")
	})
}
