package outbound_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// allEventKinds are every EventKind.
var allEventKinds = []outbound.EventKind{outbound.EventKindMessageSent, outbound.EventKindMessageDiscarded,
	outbound.EventKindMessageCancelled, outbound.EventKindMessageUnconfirmed}

// TestSubscribe: each final outcome a Client records reaches its
// subscribers, once, with the message's id and the reason; nothing else
// does; and a subscriber that does not read never holds delivery up.
func TestSubscribe(t *testing.T) {
	t.Parallel()

	// DeliveryOutcomes: sent, discarded as permanent, discarded after the
	// last attempt; a failed attempt that River retries is not final.
	t.Run("DeliveryOutcomes", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, working(), withConfig(&outbound.Config{
			Notifier: outbound.NotifierFunc(func(_ context.Context, msg *outbound.Message) error {
				switch msg.ConversationID {
				case 2:
					return outbound.Permanent(errors.New("550 no such mailbox"))
				case 3:
					return errors.New("smtp: 451 try again later")
				}
				return nil
			}),
		}))
		events := mustSubscribe(t, b.client, allEventKinds...)
		discards := mustSubscribe(t, b.client, outbound.EventKindMessageDiscarded)

		sent := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "recovery"}).Message
		permanent := mustTrigger(ctx, t, b.client, 2, &outbound.TriggerOpts{TemplateID: "recovery"}).Message
		exhausted := mustTrigger(ctx, t, b.client, 3, &outbound.TriggerOpts{TemplateID: "recovery", MaxAttempts: 2}).Message
		bulk := mustBulkTrigger(ctx, t, b.client, []int64{4}, &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})

		got := byMessage(receiveEvents(t, events, 4))
		requireEvent(t, got[sent.ID], outbound.EventKindMessageSent, outbound.EventReasonNotifierOK, sent, 1, "")
		requireEvent(t, got[permanent.ID], outbound.EventKindMessageDiscarded, outbound.EventReasonPermanentError, permanent, 1, "permanent failure: 550 no such mailbox")
		requireEvent(t, got[exhausted.ID], outbound.EventKindMessageDiscarded, outbound.EventReasonAttemptsExhausted, exhausted, 2, "smtp: 451 try again later")
		requireEvent(t, got[bulk.Messages[0].ID], outbound.EventKindMessageSent, outbound.EventReasonNotifierOK, bulk.Messages[0], 1, "")
		require.Equal(t, bulk.Envelope.ID, got[bulk.Messages[0].ID].BulkEnvelopeID)
		requireNoEvent(t, events)

		// The events agree with the rows.
		for id, ev := range got {
			msg, err := b.client.Message(ctx, id)
			require.NoError(t, err)
			require.Equal(t, string(msg.Status), strings.TrimPrefix(string(ev.Kind), "message_"))
			require.Equal(t, msg.Attempts, ev.Attempts)
			require.Equal(t, msg.LastError, ev.LastError)
		}

		// A subscriber hears only the kinds it named.
		onlyDiscards := byMessage(receiveEvents(t, discards, 2))
		require.Contains(t, onlyDiscards, permanent.ID)
		require.Contains(t, onlyDiscards, exhausted.ID)
		requireNoEvent(t, discards)
	})

	t.Run("NoNotifier", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, working())
		events := mustSubscribe(t, b.client, outbound.EventKindMessageSent)
		msg := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "recovery"}).Message
		requireEvent(t, receiveEvents(t, events, 1)[0], outbound.EventKindMessageSent, outbound.EventReasonNoNotifier, msg, 1, "")
	})

	// Cancels: CancelMessage and CancelEnvelope report each message they
	// cancelled once committed; their Tx variants report nothing, since the
	// caller's commit is out of the library's sight.
	t.Run("Cancels", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)
		events := mustSubscribe(t, b.client, allEventKinds...)

		single := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "recovery"}).Message
		require.NoError(t, b.client.CancelMessage(ctx, single.ID, nil))
		requireEvent(t, receiveEvents(t, events, 1)[0], outbound.EventKindMessageCancelled, outbound.EventReasonCancelMessage, single, 0, "")
		require.NoError(t, b.client.CancelMessage(ctx, single.ID, nil), "cancelling again does nothing")
		requireNoEvent(t, events)

		bulk := mustBulkTrigger(ctx, t, b.client, []int64{2, 3}, &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})
		b.factory.setStatus(t, bulk.Messages[1].ID, outbound.MessageStatusFailed)
		b.factory.setLastError(t, bulk.Messages[1].ID, "smtp: 451")
		n, err := b.client.CancelEnvelope(ctx, bulk.Envelope.ID, nil)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		got := byMessage(receiveEvents(t, events, 2))
		requireEvent(t, got[bulk.Messages[0].ID], outbound.EventKindMessageCancelled, outbound.EventReasonCancelEnvelope, bulk.Messages[0], 0, "")
		requireEvent(t, got[bulk.Messages[1].ID], outbound.EventKindMessageCancelled, outbound.EventReasonCancelEnvelope, bulk.Messages[1], 0, "smtp: 451")
		require.Equal(t, bulk.Envelope.ID, got[bulk.Messages[0].ID].BulkEnvelopeID)

		inTx := mustTrigger(ctx, t, b.client, 4, &outbound.TriggerOpts{TemplateID: "recovery"}).Message
		txBulk := mustBulkTrigger(ctx, t, b.client, []int64{5}, &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})
		tx, err := testPool.Begin(ctx)
		require.NoError(t, err)
		require.NoError(t, b.client.CancelMessageTx(ctx, tx, inTx.ID, nil))
		n, err = b.client.CancelEnvelopeTx(ctx, tx, txBulk.Envelope.ID, nil)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.NoError(t, tx.Commit(ctx))
		requireNoEvent(t, events)
	})

	// UnconfirmedByTheWorker: an attempt finds its message left in flight by
	// a dead worker, with CancelEnvelope's cancel requested. It may have
	// been delivered, so it ends unconfirmed, and the Notifier is not called.
	t.Run("UnconfirmedByTheWorker", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		idle, err := outbound.New(testPool, &outbound.Config{Schema: schema})
		require.NoError(t, err)
		msg := mustTrigger(ctx, t, idle, 1, &outbound.TriggerOpts{TemplateID: "recovery"}).Message
		newFactory(schema).abandonClaim(t, msg.ID, true)

		// Subscribed before it starts, so that it misses nothing.
		notifier := &recordingNotifier{}
		b := setup(t, onSchema(schema), withConfig(&outbound.Config{Notifier: notifier}))
		events := mustSubscribe(t, b.client, allEventKinds...)
		require.NoError(t, b.client.Start(ctx))
		defer func() { require.NoError(t, b.client.Stop(ctx)) }()

		const lastError = "cancel requested while an attempt was in flight, and that attempt never recorded a result: the notifier may have delivered it"
		requireEvent(t, receiveEvents(t, events, 1)[0], outbound.EventKindMessageUnconfirmed, outbound.EventReasonResultUnrecorded, msg, 1, lastError)
		stored, err := b.client.Message(ctx, msg.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.MessageStatusUnconfirmed, stored.Status)
		require.Equal(t, lastError, stored.LastError)
		require.Empty(t, notifier.Calls())
	})

	// FullBuffer: a subscriber that never reads gets its buffer's worth;
	// the rest are dropped, counted by kind in outbound.subscription.dropped_events and
	// logged once, and every message is delivered all the same.
	t.Run("FullBuffer", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		reader, providers := newTelemetryRecorder()
		var logs syncBuffer
		b := setup(t, working(), withConfig(&outbound.Config{MaxBatchSize: 10, MeterProvider: providers.meter,
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))}))
		events, unsubscribe, err := b.client.SubscribeConfig(&outbound.SubscribeConfig{ChanSize: 2, Kinds: []outbound.EventKind{outbound.EventKindMessageSent}})
		require.NoError(t, err)
		defer unsubscribe()

		bulk := mustBulkTrigger(ctx, t, b.client, conversations(10), &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})
		waitForStatus(t, b.client, messageIDs(bulk.Messages), outbound.MessageStatusSent)
		// An attempt publishes its event after its result commits.
		require.Eventually(t, func() bool { return eventsDropped(t, reader)["message_sent"] >= 8 }, waitCeiling, 5*time.Millisecond)

		require.Len(t, events, 2)
		require.Equal(t, map[string]int64{"message_sent": 8}, eventsDropped(t, reader))
		require.Equal(t, 1, strings.Count(logs.String(), "final-outcome events dropped"), logs.String())
		require.Contains(t, logs.String(), "dropped=1 last_kind=message_sent chan_size=2")
	})

	// Unsubscribe closes the channel, even while deliveries publish; later
	// outcomes go nowhere, and delivery goes on.
	t.Run("Unsubscribe", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, working(), withConfig(&outbound.Config{MaxBatchSize: 40}))
		events, unsubscribe, err := b.client.SubscribeConfig(&outbound.SubscribeConfig{ChanSize: 1, Kinds: []outbound.EventKind{outbound.EventKindMessageSent}})
		require.NoError(t, err)
		bulk := mustBulkTrigger(ctx, t, b.client, conversations(40), &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})
		receiveEvents(t, events, 1)
		unsubscribe()
		unsubscribe() // a second call does nothing
		for range events {
			// drain what was buffered before the close
		}
		waitForStatus(t, b.client, messageIDs(bulk.Messages), outbound.MessageStatusSent)
	})

	// Misuse is an error naming what was wrong, never a panic, and
	// subscribes nothing.
	t.Run("Misuse", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, tc := range []struct {
			name      string
			subscribe func() (<-chan *outbound.Event, func(), error)
			want      string
		}{
			{"NoKind", func() (<-chan *outbound.Event, func(), error) { return b.client.Subscribe() },
				"kinds must name at least one EventKind"},
			{"UnknownKind", func() (<-chan *outbound.Event, func(), error) {
				return b.client.Subscribe(outbound.EventKindMessageSent, "job_completed")
			}, `kinds holds "job_completed", which is not an EventKind: want message_sent, message_discarded, message_cancelled or message_unconfirmed`},
			{"UnknownKindInConfig", func() (<-chan *outbound.Event, func(), error) {
				return b.client.SubscribeConfig(&outbound.SubscribeConfig{Kinds: []outbound.EventKind{"sent"}})
			}, `SubscribeConfig.Kinds holds "sent", which is not an EventKind`},
			{"NegativeChanSize", func() (<-chan *outbound.Event, func(), error) {
				return b.client.SubscribeConfig(&outbound.SubscribeConfig{ChanSize: -1, Kinds: allEventKinds})
			}, "SubscribeConfig.ChanSize must not be negative (0 means the default, 1000), got -1"},
			{"NilConfig", func() (<-chan *outbound.Event, func(), error) { return b.client.SubscribeConfig(nil) },
				"config must not be nil"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var (
					events      <-chan *outbound.Event
					unsubscribe func()
					err         error
				)
				require.NotPanics(t, func() { events, unsubscribe, err = tc.subscribe() })
				require.ErrorIs(t, err, outbound.ErrInvalidArgument)
				require.ErrorContains(t, err, tc.want)
				require.Nil(t, events)
				require.Nil(t, unsubscribe)
			})
		}
	})
}

// receiveEvents receives n events, failing the test if they take long.
func receiveEvents(tb testing.TB, events <-chan *outbound.Event, n int) []*outbound.Event {
	tb.Helper()
	got := make([]*outbound.Event, 0, n)
	timeout := time.After(waitCeiling)
	for len(got) < n {
		select {
		case ev := <-events:
			got = append(got, ev)
		case <-timeout:
			tb.Fatalf("received %d of %d events", len(got), n)
		}
	}
	return got
}

// requireNoEvent checks that no event is waiting. The tests call it where
// an unwanted event would already be there: after a cancel, which publishes
// before it returns, or after the final event of every message, which comes
// after any event an earlier attempt of the same message might have sent.
func requireNoEvent(tb testing.TB, events <-chan *outbound.Event) {
	tb.Helper()
	select {
	case ev := <-events:
		tb.Fatalf("unexpected event %+v", ev)
	default:
	}
}

// byMessage keys events by message id, failing on a second event for one.
func byMessage(events []*outbound.Event) map[uuid.UUID]*outbound.Event {
	out := make(map[uuid.UUID]*outbound.Event, len(events))
	for _, ev := range events {
		if _, dup := out[ev.MessageID]; dup {
			panic("two events for message " + ev.MessageID.String())
		}
		out[ev.MessageID] = ev
	}
	return out
}

// requireEvent checks an event against the message it is about.
func requireEvent(tb testing.TB, ev *outbound.Event, kind outbound.EventKind, reason outbound.EventReason, msg *outbound.Message, attempts int, lastError string) {
	tb.Helper()
	require.NotNil(tb, ev, "no event for conversation %d", msg.ConversationID)
	require.Equal(tb, kind, ev.Kind, "conversation %d", msg.ConversationID)
	require.Equal(tb, reason, ev.Reason, "conversation %d", msg.ConversationID)
	require.Equal(tb, msg.ID, ev.MessageID)
	require.Equal(tb, msg.ConversationID, ev.ConversationID)
	require.Equal(tb, msg.TemplateID, ev.TemplateID)
	require.Equal(tb, msg.BulkEnvelopeID, ev.BulkEnvelopeID)
	require.Equal(tb, attempts, ev.Attempts, "conversation %d", msg.ConversationID)
	require.Equal(tb, lastError, ev.LastError, "conversation %d", msg.ConversationID)
	require.WithinDuration(tb, time.Now(), ev.OccurredAt, time.Minute)
}

// eventsDropped sums outbound.subscription.dropped_events by kind, checking that kind is
// its only attribute.
func eventsDropped(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	sums := map[string]int64{}
	for _, m := range findMetrics(t, reader, "outbound.subscription.dropped_events") {
		for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
			require.Equal(t, 1, dp.Attributes.Len(), "kind is the only attribute")
			kind, _ := dp.Attributes.Value("kind")
			sums[kind.AsString()] += dp.Value
		}
	}
	return sums
}
