package outbound_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cancelCall is one of the four cancels, run the way a host runs it: the Tx
// forms in a transaction of the host's own, committed at once.
type cancelCall struct {
	name string
	// envelope: the call cancels the message's envelope, not the message.
	envelope bool
	tx       bool
}

var cancelCalls = []cancelCall{
	{name: "CancelMessage"},
	{name: "CancelMessageTx", tx: true},
	{name: "CancelEnvelope", envelope: true},
	{name: "CancelEnvelopeTx", envelope: true, tx: true},
}

// run makes the call for the message (or its envelope).
func (cc cancelCall) run(ctx context.Context, client *outbound.Client, msg *outbound.Message) error {
	cancel := func(tx pgx.Tx) error {
		switch {
		case cc.envelope && tx != nil:
			_, err := client.CancelEnvelopeTx(ctx, tx, msg.BulkEnvelopeID, nil)
			return err
		case cc.envelope:
			_, err := client.CancelEnvelope(ctx, msg.BulkEnvelopeID, nil)
			return err
		case tx != nil:
			return client.CancelMessageTx(ctx, tx, msg.ID, nil)
		}
		return client.CancelMessage(ctx, msg.ID, nil)
	}
	if !cc.tx {
		return cancel(nil)
	}
	return pgx.BeginFunc(ctx, testPool, cancel)
}

// TestCancelRaces holds the promise that a cancel which returned nil is never
// followed by another attempt: the Notifier is not called for the message
// again, and the message never ends sent by a later attempt.
func TestCancelRaces(t *testing.T) {
	t.Parallel()

	// AttemptFailsWhileCancelRuns stops each cancel part-way, on a row lock
	// taken from another connection, while the attempt in flight fails and
	// records its failure; then lets the cancel go on. For CancelEnvelope
	// the lock is on the envelope's other message, which its cancel reaches
	// after it has looked at the one in flight; for CancelMessage it is on
	// the envelope, which its cancel locks before the message. The attempt's
	// failure then lands between what the cancel saw first and what it does
	// next. Before the fix CancelEnvelope returned nil having neither
	// cancelled the failed message nor asked for its cancel, and River's
	// retry sent it. The retry is an hour away, so that it cannot claim the
	// message before the cancel has run, however slow the machine; once the
	// cancel has returned, the test runs it at once, as River's JobRetry
	// does: it must find the message cancelled and call no one.
	t.Run("AttemptFailsWhileCancelRuns", func(t *testing.T) {
		t.Parallel()
		for _, cc := range cancelCalls {
			t.Run(cc.name, func(t *testing.T) {
				t.Parallel()
				ctx := ctxT(t)
				schema := migratedSchema(t)
				// The first call for a message fails; any later one succeeds.
				var gate *gateNotifier
				gate = newGateNotifier(func(_ context.Context, msg *outbound.Message) error {
					if gate.CallsFor(msg.ID) == 1 {
						return errors.New("smtp: 451 try again later")
					}
					return nil
				})
				client := startClient(t, newTestPool(t, 4), &outbound.Config{Schema: schema, Notifier: gate, MaxWorkers: 1,
					RetryPolicy: fixedRetry(time.Hour)}, gate)
				bulk := mustBulkTrigger(ctx, t, client, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})
				gate.waitInFlight(t, 1)
				inFlight, other := bulk.Messages[0], bulk.Messages[1]
				if msg, err := client.Message(ctx, other.ID); err == nil && msg.Status == outbound.MessageStatusDelivering {
					inFlight, other = other, inFlight
				}
				requireStatus(ctx, t, client, inFlight.ID, outbound.MessageStatusDelivering)

				// The row the cancel will wait for, locked by another session.
				locker, err := testPool.Begin(ctx)
				require.NoError(t, err)
				defer func() { _ = locker.Rollback(ctx) }()
				lockedRow, lockedID := "messages", other.ID
				if !cc.envelope {
					lockedRow, lockedID = "bulk_envelopes", bulk.Envelope.ID
				}
				_, err = locker.Exec(ctx, "SELECT 1 FROM "+table(schema, lockedRow)+" WHERE id = $1 FOR UPDATE", lockedID)
				require.NoError(t, err)
				lockerPID := backendPID(ctx, t, locker)

				cancelled := make(chan error, 1)
				go func() { cancelled <- cc.run(ctx, client, inFlight) }()
				cancelPID := waitBlockedBy(ctx, t, lockerPID)

				// The attempt in flight fails. Its record either commits (the
				// cancel has not touched the message) or waits for the
				// cancel's transaction (the cancel has).
				gate.Open()
				require.EventuallyWithT(t, func(c *assert.CollectT) {
					msg, err := client.Message(ctx, inFlight.ID)
					require.NoError(c, err)
					require.True(c, msg.Status == outbound.MessageStatusFailed || blockedBy(ctx, c, cancelPID) > 0,
						"the failed attempt is neither recorded nor waiting for the cancel")
				}, waitCeiling, 5*time.Millisecond)
				require.NoError(t, locker.Commit(ctx))
				require.NoError(t, <-cancelled, "the cancel")
				returned := gate.CallsFor(inFlight.ID)

				final := waitForStatus(t, client, []uuid.UUID{inFlight.ID},
					outbound.MessageStatusSent, outbound.MessageStatusCancelled, outbound.MessageStatusDiscarded, outbound.MessageStatusUnconfirmed)
				require.Equal(t, outbound.MessageStatusCancelled, final[0].Status, "the failed message after a cancel that returned nil")
				require.Equal(t, "smtp: 451 try again later", final[0].LastError)
				require.Equal(t, 1, final[0].Attempts, "no attempt after the cancel")
				require.Equal(t, returned, gate.CallsFor(inFlight.ID), "the notifier was called after the cancel returned")
				if cc.envelope {
					requireStatus(ctx, t, client, other.ID, outbound.MessageStatusCancelled)
					require.Zero(t, gate.CallsFor(other.ID))
				}
				// The cancel cancels the job when River has recorded the
				// failed attempt; when not yet, the retry finds the message
				// cancelled and cancels it.
				var state string
				require.Eventually(t, func() bool {
					state = jobByID(t, schema, inFlight.JobID).State
					return state == "retryable" || state == "cancelled"
				}, waitCeiling, 10*time.Millisecond, "River never recorded the failed attempt")
				if state == "retryable" {
					_, err := hostRiver(t, schema).JobRetry(ctx, inFlight.JobID)
					require.NoError(t, err)
				}
				require.Eventually(t, func() bool { return jobByID(t, schema, inFlight.JobID).State == "cancelled" },
					waitCeiling, 10*time.Millisecond, "the failed message's job ends cancelled")
				require.Equal(t, returned, gate.CallsFor(inFlight.ID), "the retry called the notifier after the cancel")
			})
		}
	})

	// Stress cancels 300 envelopes (100 under -short) of 1 to 4 messages
	// while 8 workers deliver them through a notifier that fails half its
	// calls: half the envelopes from inside a notifier call for one of their
	// messages, so that the cancel runs while that attempt records its
	// result, the others at a random moment. After each cancel returns nil it reads the
	// envelope's messages, then checks that none was attempted again.
	t.Run("Stress", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		envelopes := 300
		if testing.Short() {
			envelopes = 100
		}
		type seen struct {
			status   outbound.MessageStatus
			attempts int
		}
		var (
			b         *testBundle
			mu        sync.Mutex
			calls     = map[uuid.UUID][]int{} // message id -> the attempt of each call
			messages  sync.Map                // envelope id -> its messages
			turns     sync.Map                // envelope id -> its index, when a notifier call cancels it
			cancelled sync.Map                // envelope id -> true, once its cancel has started
			atCancel  sync.Map                // message id -> seen, read once its cancel returned
			inFlight  atomic.Int64
			errs      = make(chan error, envelopes)
			wg        sync.WaitGroup
		)
		// cancel cancels an envelope once, by the call of its turn, and
		// reads its messages.
		cancel := func(envelopeID uuid.UUID, turn int) {
			if _, done := cancelled.LoadOrStore(envelopeID, true); done {
				return
			}
			v, _ := messages.Load(envelopeID)
			msgs := v.([]*outbound.Message)
			if err := cancelCalls[2+turn%2].run(ctx, b.client, msgs[0]); err != nil {
				errs <- err
				return
			}
			for _, m := range msgs {
				msg, err := b.client.Message(ctx, m.ID)
				if err != nil {
					errs <- err
					return
				}
				atCancel.Store(m.ID, seen{msg.Status, msg.Attempts})
				if msg.Status == outbound.MessageStatusDelivering {
					inFlight.Add(1)
				}
			}
		}
		notifier := outbound.NotifierFunc(func(_ context.Context, msg *outbound.Message) error {
			mu.Lock()
			calls[msg.ID] = append(calls[msg.ID], msg.Attempts)
			mu.Unlock()
			if turn, ok := turns.Load(msg.BulkEnvelopeID); ok {
				wg.Go(func() { cancel(msg.BulkEnvelopeID, turn.(int)) })
			}
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
			if rand.IntN(2) == 0 {
				return errors.New("smtp: 451 try again later")
			}
			return nil
		})
		b = setup(t, working(), withConfig(&outbound.Config{Notifier: notifier, MaxWorkers: 8, MaxAttempts: 25, FetchCooldown: 5 * time.Millisecond,
			RetryPolicy: fixedRetry(5 * time.Millisecond)}))
		// Written idle, so that every envelope's messages are known before
		// any delivery.
		idle, err := outbound.New(testPool, &outbound.Config{Schema: b.schema})
		require.NoError(t, err)
		var all []uuid.UUID
		for i := range envelopes {
			bulk := mustBulkTrigger(ctx, t, idle, conversations(1+i%4),
				&outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up.", ScheduleIn: time.Second})
			messages.Store(bulk.Envelope.ID, bulk.Messages)
			all = append(all, messageIDs(bulk.Messages)...)
			if i%2 == 0 {
				turns.Store(bulk.Envelope.ID, i/2)
			} else {
				wg.Go(func() {
					time.Sleep(time.Second + time.Duration(rand.IntN(1500))*time.Millisecond)
					cancel(bulk.Envelope.ID, i/2)
				})
			}
		}
		// Every message final, read in one statement rather than one call
		// each.
		var final []*outbound.Message
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			rows, err := testPool.Query(ctx, "SELECT id, status, attempts, NOT awaiting_result FROM "+table(b.schema, "messages"))
			require.NoError(c, err)
			final = final[:0]
			var (
				msg     outbound.Message
				isFinal bool
			)
			_, err = pgx.ForEachRow(rows, []any{&msg.ID, &msg.Status, &msg.Attempts, &isFinal}, func() error {
				if !isFinal {
					return fmt.Errorf("message %s is %s", msg.ID, msg.Status)
				}
				final = append(final, &outbound.Message{ID: msg.ID, Status: msg.Status, Attempts: msg.Attempts})
				return nil
			})
			require.NoError(c, err)
		}, waitCeiling, 20*time.Millisecond)
		require.Len(t, final, len(all))
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}

		// A broken promise is a message, of an envelope whose cancel
		// returned nil, that was then pending or failed (which a worker
		// attempts again), or was attempted again, or called again.
		counts := map[outbound.MessageStatus]int{}
		var broken []string
		mu.Lock()
		defer mu.Unlock()
		for _, msg := range final {
			counts[msg.Status]++
			v, _ := atCancel.Load(msg.ID)
			at := v.(seen)
			laterCalls := 0
			for _, attempt := range calls[msg.ID] {
				if attempt > at.attempts {
					laterCalls++
				}
			}
			if at.status == outbound.MessageStatusPending || at.status == outbound.MessageStatusFailed ||
				msg.Attempts != at.attempts || laterCalls > 0 ||
				(at.status == outbound.MessageStatusCancelled && msg.Status != outbound.MessageStatusCancelled) {
				broken = append(broken, fmt.Sprintf("%s: %s with %d attempts after the cancel, then %s after %d, called %d times since",
					msg.ID, at.status, at.attempts, msg.Status, msg.Attempts, laterCalls))
			}
		}
		t.Logf("%d envelopes cancelled, %d messages: %d in flight at their cancel, %d attempted after it; final: %d sent, %d cancelled, %d discarded, %d unconfirmed",
			envelopes, len(final), inFlight.Load(), len(broken), counts[outbound.MessageStatusSent], counts[outbound.MessageStatusCancelled],
			counts[outbound.MessageStatusDiscarded], counts[outbound.MessageStatusUnconfirmed])
		require.Empty(t, broken, "messages attempted after their envelope's cancel returned nil")
	})
}

// requireStatus checks a message's status now.
func requireStatus(ctx context.Context, tb testing.TB, client *outbound.Client, id uuid.UUID, status outbound.MessageStatus) {
	tb.Helper()
	msg, err := client.Message(ctx, id)
	require.NoError(tb, err)
	require.Equal(tb, status, msg.Status, "message %s", id)
}

// backendPID is the server process of a transaction's connection.
func backendPID(ctx context.Context, tb testing.TB, tx pgx.Tx) int32 {
	tb.Helper()
	var pid int32
	require.NoError(tb, tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))
	return pid
}

// waitBlockedBy waits until a session waits for a lock that the session pid
// holds, and returns the waiting session's pid.
func waitBlockedBy(ctx context.Context, tb testing.TB, pid int32) int32 {
	tb.Helper()
	var waiter int32
	require.EventuallyWithT(tb, func(c *assert.CollectT) {
		err := testPool.QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)) LIMIT 1", pid).Scan(&waiter)
		require.NoError(c, err, "no session waits for %d", pid)
	}, waitCeiling, 5*time.Millisecond)
	return waiter
}

// blockedBy counts the sessions that wait for a lock the session pid holds.
func blockedBy(ctx context.Context, c require.TestingT, pid int32) int {
	var n int
	require.NoError(c, testPool.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", pid).Scan(&n))
	return n
}
