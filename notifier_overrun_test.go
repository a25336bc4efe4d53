package outbound_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/cairnloop/outbound"
)

func TestNotifierOverrun(t *testing.T) {
	t.Parallel()

	// A Notifier call that outlives NotifyTimeout and ignores its context
	// keeps its message's claim and its worker until it returns, and what
	// it returns is recorded. Retries come 50ms after a failure here, so a
	// call given up at its deadline would be made again beside itself.
	t.Run("OneCallPerMessageAndAtMostMaxWorkers", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		notifier := newGateNotifier(func(context.Context, *outbound.Message) error {
			time.Sleep(3500 * time.Millisecond) // ignores its context
			return nil
		})
		notifier.Open()
		const maxWorkers = 2
		b := setup(t, working(), withConfig(&outbound.Config{
			Notifier:      notifier,
			NotifyTimeout: time.Second,
			MaxWorkers:    maxWorkers,
		}))
		res := mustBulkTrigger(ctx, t, b.client, conversations(4), &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "body"})
		msgs := waitForStatus(t, b.client, messageIDs(res.Messages), outbound.MessageStatusSent, outbound.MessageStatusDiscarded)
		maxTotal, maxOneID := notifier.MaxInFlight()
		require.LessOrEqual(t, maxTotal, maxWorkers, "more calls at once than MaxWorkers")
		require.Equal(t, 1, maxOneID, "two calls at once for one message")
		for _, m := range msgs {
			require.Equal(t, outbound.MessageStatusSent, m.Status, "the late result is recorded")
			require.Equal(t, 1, m.Attempts)
			require.Equal(t, 1, notifier.CallsFor(m.ID), "calls for message %s", m.ID)
		}
	})

	t.Run("ClaimRenewedWhileTheCallRuns", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		release := make(chan struct{})
		notifier := newGateNotifier(func(context.Context, *outbound.Message) error {
			<-release // ignores its context
			return nil
		})
		notifier.Open()
		b := setup(t, working(), withConfig(&outbound.Config{Notifier: notifier, NotifyTimeout: time.Second}))
		res := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t"})
		claimedUntil := func() time.Time {
			var until *time.Time
			require.NoError(t, testPool.QueryRow(ctx, "SELECT claimed_until FROM "+table(b.schema, "messages")+" WHERE id = $1", res.Message.ID).Scan(&until))
			if until == nil {
				return time.Time{}
			}
			return *until
		}
		require.Eventually(t, func() bool { return !claimedUntil().IsZero() }, waitCeiling, 5*time.Millisecond)
		first := claimedUntil()
		// Past the deadline, the call still runs: its claim is made to
		// run a claim's length from then.
		require.Eventually(t, func() bool { return claimedUntil().After(first) }, waitCeiling, 10*time.Millisecond,
			"the claim was not renewed past the notifier's deadline")
		m, err := b.client.Message(ctx, res.Message.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.MessageStatusDelivering, m.Status)
		close(release)
		waitForStatus(t, b.client, []uuid.UUID{res.Message.ID}, outbound.MessageStatusSent)
	})
}
