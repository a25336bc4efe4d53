package outbound_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
)

// TestCancelMessage cancels single messages: pending, already cancelled, sent,
// in flight, and while the worker races to deliver them.
func TestCancelMessage(t *testing.T) {
	t.Parallel()

	t.Run("Pending", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)

		res := mustTrigger(ctx, t, b.client, 42, &outbound.TriggerOpts{TemplateID: "recovery"})
		require.NoError(t, b.client.CancelMessage(ctx, res.Message.ID, nil))

		msg, err := b.client.Message(ctx, res.Message.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.MessageStatusCancelled, msg.Status)
		require.Equal(t, "cancelled", msg.Metadata["status"])
		require.Equal(t, "cancelled", jobByID(t, b.schema, msg.JobID).State)

		// Cancelling again is a no-op.
		require.NoError(t, b.client.CancelMessage(ctx, res.Message.ID, nil))

		// The dedup key is free: the same trigger writes a new message.
		again := mustTrigger(ctx, t, b.client, 42, &outbound.TriggerOpts{TemplateID: "recovery"})
		require.False(t, again.Duplicate)
		require.NotEqual(t, res.Message.ID, again.Message.ID)

		err = b.client.CancelMessage(ctx, uuid.New(), nil)
		require.ErrorIs(t, err, outbound.ErrNotFound)
	})

	t.Run("NeverDelivered", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		notifier := &recordingNotifier{}
		config := &outbound.Config{Schema: schema, Notifier: notifier}
		idle, err := outbound.New(testPool, config)
		require.NoError(t, err)

		// Cancelled before any worker runs: one message, and a whole envelope.
		single := mustTrigger(ctx, t, idle, 1, &outbound.TriggerOpts{TemplateID: "recovery"})
		require.NoError(t, idle.CancelMessage(ctx, single.Message.ID, nil))
		bulk := mustBulkTrigger(ctx, t, idle, conversations(4), &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})
		n, err := idle.CancelEnvelope(ctx, bulk.Envelope.ID, nil)
		require.NoError(t, err)
		require.Equal(t, 4, n)

		// A cancelled message whose job is still queued (as when a cancel lands
		// after a worker fetched the job): the worker must skip it.
		orphan := mustTrigger(ctx, t, idle, 2, &outbound.TriggerOpts{TemplateID: "recovery"})
		newFactory(schema).setStatus(t, orphan.Message.ID, outbound.MessageStatusCancelled)

		b := setup(t, working(), onSchema(schema), withConfig(config))
		marker := mustTrigger(ctx, t, b.client, 3, &outbound.TriggerOpts{TemplateID: "recovery"})
		waitForStatus(t, b.client, []uuid.UUID{marker.Message.ID}, outbound.MessageStatusSent)
		require.Eventually(t, func() bool { return jobByID(t, schema, orphan.Message.JobID).State == "cancelled" },
			waitCeiling, 20*time.Millisecond)

		calls := notifier.Calls()
		require.Len(t, calls, 1, "only the marker is delivered")
		require.Equal(t, marker.Message.ID, calls[0].Message.ID)
		for _, id := range append(messageIDs(bulk.Messages), single.Message.ID, orphan.Message.ID) {
			msg, err := b.client.Message(ctx, id)
			require.NoError(t, err)
			require.Equal(t, outbound.MessageStatusCancelled, msg.Status)
		}
	})

	t.Run("Sent", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, working(), withConfig(&outbound.Config{Notifier: &recordingNotifier{}}))

		res := mustTrigger(ctx, t, b.client, 5, &outbound.TriggerOpts{TemplateID: "recovery"})
		waitForStatus(t, b.client, []uuid.UUID{res.Message.ID}, outbound.MessageStatusSent)

		err := b.client.CancelMessage(ctx, res.Message.ID, nil)
		require.ErrorIs(t, err, outbound.ErrNotCancellable)
		require.ErrorContains(t, err, "is sent")
		msg, err := b.client.Message(ctx, res.Message.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.MessageStatusSent, msg.Status)
	})

	// InFlight cancels a message whose notifier is running: the
	// cancel returns at once, while the notifier still waits, with an error that
	// says a delivery is in progress, and the delivery goes on to send it.
	t.Run("InFlight", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		gate := newGateNotifier(nil)
		client := startClient(t, newTestPool(t, 4), &outbound.Config{Schema: schema, Notifier: gate}, gate)
		res := mustTrigger(ctx, t, client, 40, &outbound.TriggerOpts{TemplateID: "recovery"})
		gate.waitInFlight(t, 1)

		// A cancel that waited for the notifier would run into this deadline.
		cancelCtx, cancel := context.WithTimeout(ctx, waitCeiling)
		defer cancel()
		err := client.CancelMessage(cancelCtx, res.Message.ID, nil)
		require.ErrorIs(t, err, outbound.ErrNotCancellable)
		require.ErrorContains(t, err, "a delivery is in progress")
		require.Equal(t, 1, gate.InFlight(), "the cancel returned while the notifier still ran")

		gate.Open()
		msg := waitForStatus(t, client, []uuid.UUID{res.Message.ID}, outbound.MessageStatusSent)[0]
		require.Equal(t, 1, gate.CallsFor(msg.ID))
	})

	// RacesDelivery cancels messages while the worker delivers them:
	// half of them from inside the notifier, so that the cancel arrives while the
	// delivery is in progress, the other half at random moments. Each message
	// must end sent or cancelled, never both, and never be left behind.
	t.Run("RacesDelivery", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		const n = 120
		var (
			b          *testBundle
			cancelErrs = make([]error, n)
			index      sync.Map // message id -> position in the bulk
			wg         sync.WaitGroup
		)
		notifier := &recordingNotifier{fn: func(_ context.Context, msg *outbound.Message) error {
			if v, _ := index.Load(msg.ID); v.(int)%2 == 0 {
				i := v.(int)
				// Cancel mid-delivery: refused, as a delivery is in progress,
				// or, if it comes after the record, as the message is sent.
				wg.Go(func() { cancelErrs[i] = b.client.CancelMessage(ctx, msg.ID, nil) })
				time.Sleep(20 * time.Millisecond)
			}
			return nil
		}}
		b = setup(t, working(), onSchema(migratedSchema(t)), withConfig(&outbound.Config{Notifier: notifier, MaxWorkers: 8, MaxBatchSize: n}))

		// Written idle, so that the index is complete before any delivery.
		idle, err := outbound.New(testPool, &outbound.Config{Schema: b.schema, MaxBatchSize: n})
		require.NoError(t, err)
		bulk := mustBulkTrigger(ctx, t, idle, conversations(n), &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up.", ScheduleIn: time.Second})
		for i, msg := range bulk.Messages {
			index.Store(msg.ID, i)
		}
		for i, msg := range bulk.Messages {
			if i%2 == 1 {
				wg.Go(func() {
					time.Sleep(time.Duration(rand.IntN(3000)) * time.Millisecond)
					cancelErrs[i] = b.client.CancelMessage(ctx, msg.ID, nil)
				})
			}
		}

		final := waitForStatus(t, b.client, messageIDs(bulk.Messages), outbound.MessageStatusSent, outbound.MessageStatusCancelled)
		wg.Wait()
		var sent, cancelled int
		for i, msg := range final {
			calls := len(notifier.callsFor(msg.ID))
			switch msg.Status {
			case outbound.MessageStatusSent:
				sent++
				require.Equal(t, 1, calls, "a sent message is delivered once")
				require.ErrorIs(t, cancelErrs[i], outbound.ErrNotCancellable, "the cancel of a sent message fails")
			case outbound.MessageStatusCancelled:
				cancelled++
				require.Zero(t, calls, "a cancelled message is never delivered")
				require.NoError(t, cancelErrs[i])
				require.True(t, msg.SentAt.IsZero())
				require.Equal(t, "cancelled", jobByID(t, b.schema, msg.JobID).State)
			}
			if i%2 == 0 {
				require.Equal(t, outbound.MessageStatusSent, msg.Status, "cancelled mid-delivery")
			}
		}
		t.Logf("%d sent, %d cancelled", sent, cancelled)
	})
}

// TestCancelEnvelope cancels envelopes: their undelivered messages, their
// status, concurrent cancels of their messages, and messages in flight.
func TestCancelEnvelope(t *testing.T) {
	t.Parallel()

	t.Run("Undelivered", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		// The first two recipients fail every attempt; the rest are delivered.
		// Their retries are an hour away, so that they stay failed, not in
		// flight, for the cancel.
		recipients := conversations(5)
		notifier := &recordingNotifier{fn: func(_ context.Context, msg *outbound.Message) error {
			if msg.ConversationID == recipients[0] || msg.ConversationID == recipients[1] {
				return errors.New("mailbox full")
			}
			return nil
		}}
		b := setup(t, working(), withConfig(&outbound.Config{Notifier: notifier, RetryPolicy: fixedRetry(time.Hour)}))

		bulk := mustBulkTrigger(ctx, t, b.client, recipients, &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})
		ids := messageIDs(bulk.Messages)
		waitForStatus(t, b.client, ids[2:], outbound.MessageStatusSent)
		waitForStatus(t, b.client, ids[:2], outbound.MessageStatusFailed)

		progress, err := b.client.EnvelopeProgress(ctx, bulk.Envelope.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.Progress{Sent: 3, Failed: 2}, *progress)

		// Only the undelivered recipients are cancelled; the envelope, with
		// messages sent, stays submitted.
		n, err := b.client.CancelEnvelope(ctx, bulk.Envelope.ID, nil)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		progress, err = b.client.EnvelopeProgress(ctx, bulk.Envelope.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.Progress{Sent: 3, Cancelled: 2}, *progress)
		require.Equal(t, 5, progress.Total())
		env, err := b.client.Envelope(ctx, bulk.Envelope.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.EnvelopeStatusSubmitted, env.Status)

		n, err = b.client.CancelEnvelope(ctx, bulk.Envelope.ID, nil)
		require.NoError(t, err)
		require.Zero(t, n)

		_, err = b.client.CancelEnvelope(ctx, uuid.New(), nil)
		require.ErrorIs(t, err, outbound.ErrNotFound)
		_, err = b.client.EnvelopeProgress(ctx, uuid.New())
		require.ErrorIs(t, err, outbound.ErrNotFound)
	})

	t.Run("Status", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)

		bulk := mustBulkTrigger(ctx, t, b.client, conversations(3), &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})

		// Cancelling recipients one by one: the last one cancels the envelope.
		for i, msg := range bulk.Messages {
			require.NoError(t, b.client.CancelMessage(ctx, msg.ID, nil))
			env, err := b.client.Envelope(ctx, bulk.Envelope.ID)
			require.NoError(t, err)
			want := outbound.EnvelopeStatusSubmitted
			if i == len(bulk.Messages)-1 {
				want = outbound.EnvelopeStatusCancelled
			}
			require.Equal(t, want, env.Status, "after %d cancels", i+1)
		}
		progress, err := b.client.EnvelopeProgress(ctx, bulk.Envelope.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.Progress{Cancelled: 3}, *progress)

		// CancelEnvelope on a fresh bulk cancels it whole.
		bulk = mustBulkTrigger(ctx, t, b.client, conversations(3), &outbound.BulkTriggerOpts{TemplateID: "outage-2", RenderedBody: "Back up."})
		n, err := b.client.CancelEnvelope(ctx, bulk.Envelope.ID, nil)
		require.NoError(t, err)
		require.Equal(t, 3, n)
		env, err := b.client.Envelope(ctx, bulk.Envelope.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.EnvelopeStatusCancelled, env.Status)
		for _, msg := range bulk.Messages {
			require.Equal(t, "cancelled", jobByID(t, b.schema, msg.JobID).State)
		}
		listed, err := b.client.ListEnvelopes(ctx, &outbound.ListEnvelopesParams{Status: outbound.EnvelopeStatusCancelled})
		require.NoError(t, err)
		require.Len(t, listed.Envelopes, 2)

		// A refused envelope has nothing to cancel.
		_, err = b.client.BulkTrigger(ctx, conversations(26), &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})
		var tooLarge *outbound.BatchTooLargeError
		require.ErrorAs(t, err, &tooLarge)
		_, err = b.client.CancelEnvelope(ctx, tooLarge.EnvelopeID, nil)
		require.ErrorIs(t, err, outbound.ErrNotCancellable)
		progress, err = b.client.EnvelopeProgress(ctx, tooLarge.EnvelopeID)
		require.NoError(t, err)
		require.Zero(t, progress.Total())
	})

	// ConcurrentMessageCancels cancels every recipient of an
	// envelope at once, each in its own call: whichever commits last must see
	// the others and mark the envelope cancelled.
	t.Run("ConcurrentMessageCancels", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)
		bulk := mustBulkTrigger(ctx, t, b.client, conversations(10), &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})

		var wg sync.WaitGroup
		for _, msg := range bulk.Messages {
			wg.Go(func() { require.NoError(t, b.client.CancelMessage(ctx, msg.ID, nil)) })
		}
		wg.Go(func() {
			_, err := b.client.CancelEnvelope(ctx, bulk.Envelope.ID, nil)
			require.NoError(t, err)
		})
		wg.Wait()
		env, err := b.client.Envelope(ctx, bulk.Envelope.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.EnvelopeStatusCancelled, env.Status)
	})

	// InFlight cancels an envelope while two of its messages
	// are in flight: the call returns at once and cancels the two not yet
	// claimed. Of the two in flight, the one whose attempt then fails ends
	// cancelled instead of being retried, and the one that succeeds ends sent.
	// When every message in flight fails, the envelope ends cancelled.
	t.Run("InFlight", func(t *testing.T) {
		t.Parallel()

		type bundle struct {
			client   *outbound.Client
			schema   string
			bulk     *outbound.BulkTriggerResult
			gate     *gateNotifier
			inFlight []uuid.UUID
		}
		// setup starts a worker of two, makes a bulk of n, and waits until two
		// of its messages are in flight. Once let through, the call for the
		// first of those fails with failure, and so does the second's when
		// both fail.
		setup := func(t *testing.T, n int, bothFail bool, failure error) *bundle {
			ctx := ctxT(t)
			b := &bundle{schema: migratedSchema(t)}
			var fail sync.Map
			b.gate = newGateNotifier(func(_ context.Context, msg *outbound.Message) error {
				if _, ok := fail.Load(msg.ID); ok {
					return failure
				}
				return nil
			})
			b.client = startClient(t, newTestPool(t, 4), &outbound.Config{Schema: b.schema, Notifier: b.gate, MaxWorkers: 2,
				RetryPolicy: fixedRetry(50 * time.Millisecond)}, b.gate)
			var err error
			b.bulk, err = b.client.BulkTrigger(ctx, conversations(n), &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})
			require.NoError(t, err)
			b.gate.waitInFlight(t, 2)
			for _, m := range b.bulk.Messages {
				msg, err := b.client.Message(ctx, m.ID)
				require.NoError(t, err)
				if msg.Status == outbound.MessageStatusDelivering {
					b.inFlight = append(b.inFlight, msg.ID)
				}
			}
			require.Len(t, b.inFlight, 2)
			fail.Store(b.inFlight[0], true)
			if bothFail {
				fail.Store(b.inFlight[1], true)
			}
			return b
		}

		t.Run("OneFailsOneSucceeds", func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			b := setup(t, 4, false, errors.New("smtp: 451 try again later"))
			events := mustSubscribe(t, b.client, allEventKinds...)

			// A cancel that waited for the notifiers would run into this.
			cancelCtx, cancel := context.WithTimeout(ctx, waitCeiling)
			defer cancel()
			n, err := b.client.CancelEnvelope(cancelCtx, b.bulk.Envelope.ID, &outbound.CancelOpts{Actor: "agent:7"})
			require.NoError(t, err)
			require.Equal(t, 2, n, "the two messages not in flight")
			require.Equal(t, 2, b.gate.InFlight(), "the cancel returned while the notifiers still ran")
			for _, ev := range receiveEvents(t, events, 2) {
				require.Equal(t, outbound.EventKindMessageCancelled, ev.Kind)
				require.Equal(t, outbound.EventReasonCancelEnvelope, ev.Reason)
				require.NotContains(t, b.inFlight, ev.MessageID)
			}

			b.gate.Open()
			failed := waitForStatus(t, b.client, b.inFlight[:1], outbound.MessageStatusCancelled)[0]
			require.Equal(t, "smtp: 451 try again later", failed.LastError)
			require.Equal(t, "cancelled", failed.Metadata["status"])
			require.Equal(t, "agent:7", failed.CancelledBy, "who asked while it was in flight")
			require.False(t, failed.CancelledAt.IsZero())
			sent := waitForStatus(t, b.client, b.inFlight[1:], outbound.MessageStatusSent)[0]
			got := byMessage(receiveEvents(t, events, 2))
			requireEvent(t, got[failed.ID], outbound.EventKindMessageCancelled, outbound.EventReasonCancelEnvelope, failed, 1, failed.LastError)
			requireEvent(t, got[sent.ID], outbound.EventKindMessageSent, outbound.EventReasonNotifierOK, sent, 1, "")
			require.Eventually(t, func() bool {
				job, err := hostRiver(t, b.schema).JobGet(ctx, failed.JobID)
				require.NoError(t, err)
				return job.State == rivertype.JobStateCancelled
			}, waitCeiling, 10*time.Millisecond, "the failed attempt's job was not cancelled")

			progress, err := b.client.EnvelopeProgress(ctx, b.bulk.Envelope.ID)
			require.NoError(t, err)
			require.Equal(t, outbound.Progress{Sent: 1, Cancelled: 3}, *progress)
			env, err := b.client.Envelope(ctx, b.bulk.Envelope.ID)
			require.NoError(t, err)
			require.Equal(t, outbound.EnvelopeStatusSubmitted, env.Status, "one message was sent")
			require.Equal(t, outbound.EnvelopeOutcomePartlyCancelled, env.Outcome)
			require.Equal(t, "agent:7", env.CancelledBy)
			for _, m := range b.bulk.Messages {
				if m.ID == b.inFlight[0] || m.ID == b.inFlight[1] {
					require.Equal(t, 1, b.gate.CallsFor(m.ID), "a message in flight was called again")
				} else {
					require.Zero(t, b.gate.CallsFor(m.ID), "a cancelled message reached the notifier")
				}
			}
		})

		t.Run("AllInFlightFail", func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			b := setup(t, 2, true, errors.New("smtp: 451 try again later"))
			n, err := b.client.CancelEnvelope(ctx, b.bulk.Envelope.ID, nil)
			require.NoError(t, err)
			require.Zero(t, n)
			b.gate.Open()
			waitForStatus(t, b.client, b.inFlight, outbound.MessageStatusCancelled)
			env, err := b.client.Envelope(ctx, b.bulk.Envelope.ID)
			require.NoError(t, err)
			require.Equal(t, outbound.EnvelopeStatusCancelled, env.Status, "the last message's cancel ends the envelope")
			require.Equal(t, outbound.EnvelopeOutcomeCancelled, env.Outcome)
			for _, id := range b.inFlight {
				require.Equal(t, 1, b.gate.CallsFor(id))
			}
		})

		// A message whose attempt in flight fails permanently ends by its
		// own failure, not by the cancel asked for meanwhile.
		t.Run("PermanentFailureKeepsItsOutcome", func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			b := setup(t, 3, true, outbound.Permanent(errors.New("smtp: 550 no such mailbox")))
			n, err := b.client.CancelEnvelope(ctx, b.bulk.Envelope.ID, &outbound.CancelOpts{Actor: "agent:7"})
			require.NoError(t, err)
			require.Equal(t, 1, n)
			b.gate.Open()
			for _, msg := range waitForStatus(t, b.client, b.inFlight, outbound.MessageStatusDiscarded) {
				require.Contains(t, msg.LastError, "550 no such mailbox")
				require.Empty(t, msg.CancelledBy)
				require.True(t, msg.CancelledAt.IsZero())
			}
			env, err := b.client.Envelope(ctx, b.bulk.Envelope.ID)
			require.NoError(t, err)
			require.Equal(t, outbound.EnvelopeStatusSubmitted, env.Status, "two messages were discarded")
			require.Equal(t, outbound.EnvelopeOutcomePartlyCancelled, env.Outcome)
			progress, err := b.client.EnvelopeProgress(ctx, b.bulk.Envelope.ID)
			require.NoError(t, err)
			require.Equal(t, outbound.Progress{Discarded: 2, Cancelled: 1}, *progress)
		})
	})
}
