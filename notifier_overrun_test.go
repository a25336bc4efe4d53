package outbound_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/cairnloop/outbound"
)

// overrunNotifier ignores its context and takes its time over every call,
// counting the calls in flight, in all and for each message.
type overrunNotifier struct {
	take time.Duration
	gate chan struct{} // when not nil, a call waits for it instead

	mu       sync.Mutex
	calls    map[uuid.UUID]int
	inFlight map[uuid.UUID]int
	total    int
	maxTotal int
	maxOneID int
}

func newOverrunNotifier(take time.Duration) *overrunNotifier {
	return &overrunNotifier{take: take, calls: map[uuid.UUID]int{}, inFlight: map[uuid.UUID]int{}}
}

func (n *overrunNotifier) OnOutboundTriggered(_ context.Context, msg *outbound.Message) error {
	n.mu.Lock()
	n.calls[msg.ID]++
	n.inFlight[msg.ID]++
	n.total++
	n.maxTotal = max(n.maxTotal, n.total)
	n.maxOneID = max(n.maxOneID, n.inFlight[msg.ID])
	n.mu.Unlock()
	if n.gate != nil {
		<-n.gate
	} else {
		time.Sleep(n.take)
	}
	n.mu.Lock()
	n.inFlight[msg.ID]--
	n.total--
	n.mu.Unlock()
	return nil
}

func (n *overrunNotifier) counts() (maxTotal, maxOneID int, calls map[uuid.UUID]int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[uuid.UUID]int, len(n.calls))
	for id, c := range n.calls {
		out[id] = c
	}
	return n.maxTotal, n.maxOneID, out
}

func TestNotifierOverrun(t *testing.T) {
	t.Parallel()

	// A Notifier call that outlives NotifyTimeout and ignores its context
	// keeps its message's claim and its worker until it returns, and what
	// it returns is recorded. Retries come 50ms after a failure here, so a
	// call given up at its deadline would be made again beside itself.
	t.Run("OneCallPerMessageAndAtMostMaxWorkers", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		notifier := newOverrunNotifier(3500 * time.Millisecond)
		const maxWorkers = 2
		b := setup(t, working(), withConfig(&outbound.Config{
			Notifier:      notifier,
			NotifyTimeout: time.Second,
			MaxWorkers:    maxWorkers,
		}))
		res := mustBulkTrigger(ctx, t, b.client, conversations(4), &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "body"})
		msgs := waitForStatus(t, b.client, messageIDs(res.Messages), outbound.MessageStatusSent, outbound.MessageStatusDiscarded)
		maxTotal, maxOneID, calls := notifier.counts()
		require.LessOrEqual(t, maxTotal, maxWorkers, "more calls at once than MaxWorkers")
		require.Equal(t, 1, maxOneID, "two calls at once for one message")
		for _, m := range msgs {
			require.Equal(t, outbound.MessageStatusSent, m.Status, "the late result is recorded")
			require.Equal(t, 1, m.Attempts)
			require.Equal(t, 1, calls[m.ID], "calls for message %s", m.ID)
		}
	})

	t.Run("ClaimRenewedWhileTheCallRuns", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		notifier := newOverrunNotifier(0)
		notifier.gate = make(chan struct{})
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
		require.Eventually(t, func() bool { return !claimedUntil().IsZero() }, time.Minute, 5*time.Millisecond)
		first := claimedUntil()
		// Past the deadline, the call still runs: its claim is made to
		// run a claim's length from then.
		require.Eventually(t, func() bool { return claimedUntil().After(first) }, time.Minute, 10*time.Millisecond,
			"the claim was not renewed past the notifier's deadline")
		m, err := b.client.Message(ctx, res.Message.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.MessageStatusDelivering, m.Status)
		close(notifier.gate)
		waitForStatus(t, b.client, []uuid.UUID{res.Message.ID}, outbound.MessageStatusSent)
	})
}
