package outbound_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func TestTelemetry(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	reader, providers := newTelemetryRecorder()
	b := setup(t, withConfig(&outbound.Config{MaxBatchSize: 3, TracerProvider: providers.tracer, MeterProvider: providers.meter}))

	const (
		actor = "agent:secret-actor"
		body  = "secret-body-text"
	)
	// Every trigger outcome...
	first := mustTrigger(ctx, t, b.client, 4242, &outbound.TriggerOpts{TemplateID: "tpl-recovery", Actor: actor, Content: body,
		Data: map[string]any{"phone": "secret-phone"}})
	mustTrigger(ctx, t, b.client, 4242, &outbound.TriggerOpts{TemplateID: "tpl-recovery", Actor: actor, Content: body})
	_, err := b.client.Trigger(ctx, 4243, &outbound.TriggerOpts{TemplateID: "tpl-recovery", Actor: actor, Auditor: failingAuditor})
	require.Error(t, err)

	// ...and every bulk outcome but the failed refusal, tested on its own.
	envelopeID := uuid.Must(uuid.NewV7())
	bulkOpts := &outbound.BulkTriggerOpts{TemplateID: "tpl-bulk", RenderedBody: body, Actor: actor, EnvelopeID: envelopeID,
		Data:       map[string]any{"tenant": "secret-tenant"},
		Recipients: map[int64]outbound.BulkRecipient{5001: {RenderedBody: "secret-own-body", Data: map[string]any{"phone": "secret-own-phone"}}}}
	mustBulkTrigger(ctx, t, b.client, []int64{5001, 5002, 5003}, bulkOpts)
	mustBulkTrigger(ctx, t, b.client, []int64{5001, 5002, 5003}, bulkOpts)
	_, err = b.client.BulkTrigger(ctx, []int64{6001, 6002, 6003, 6004}, &outbound.BulkTriggerOpts{TemplateID: "tpl-bulk", RenderedBody: body, Actor: actor})
	require.ErrorIs(t, err, outbound.ErrBatchTooLarge)
	_, err = b.client.BulkTrigger(ctx, []int64{7001, 7002}, &outbound.BulkTriggerOpts{TemplateID: "tpl-bulk", RenderedBody: body, Actor: actor, Auditor: failingAuditor})
	require.Error(t, err)

	t.Run("Metrics", func(t *testing.T) {
		bulkCalls := map[string]int64{"submitted": 1, "replayed": 1, "refused_cap_exceeded": 1, "failed": 1}
		requirePointSums(t, reader, byOutcome, map[string]map[string]int64{
			// One single each, and bulks of three (triggered, then replayed)
			// and of two (failed).
			// A replay is not a duplicate: it wrote nothing, and asked for
			// nothing new.
			"outbound.trigger.messages":      {"triggered": 1 + 3, "duplicate": 1, "replayed": 3, "refused": 4, "failed": 1 + 2},
			"outbound.trigger.duration":      {"triggered": 1, "duplicate": 1, "failed": 1},
			"outbound.bulk_trigger.duration": bulkCalls,
		})

		var names []string
		for _, sm := range collect(t, reader).ScopeMetrics {
			require.Equal(t, outbound.ScopeName, sm.Scope.Name)
			for _, m := range sm.Metrics {
				names = append(names, m.Name)
			}
		}
		require.ElementsMatch(t, []string{"outbound.trigger.messages", "outbound.trigger.duration", "outbound.bulk_trigger.duration",
			"outbound.message.backlog", "outbound.message.oldest_pending.age", "outbound.message.rate_limited"}, names)
	})

	t.Run("FailuresAndRefusalsCarryAReason", func(t *testing.T) {
		for _, name := range []string{"outbound.trigger.messages", "outbound.trigger.duration", "outbound.bulk_trigger.duration"} {
			for _, m := range findMetrics(t, reader, name) {
				for _, set := range metricAttributeSets(t, m) {
					o, _ := set.Value("outcome")
					r, hasReason := set.Value("reason")
					switch o.AsString() {
					case "failed":
						require.Equal(t, "auditor_error", r.AsString(), name)
					case "refused_cap_exceeded":
						require.Equal(t, "batch_too_large", r.AsString(), name)
					default:
						require.False(t, hasReason, "%s: only failures and refusals carry a reason", name)
					}
				}
			}
		}
	})

	t.Run("MetricAttributesAreEnumOnly", func(t *testing.T) {
		allowed := map[string]bool{
			"triggered": true, "duplicate": true, "failed": true, "submitted": true, "replayed": true,
			"refused_cap_exceeded": true, "refused_cap_exceeded_audit_failed": true, "refused": true,
		}
		vocabulary := map[string]map[string]bool{
			"outcome": allowed,
			"reason":  {"auditor_error": true, "batch_too_large": true},
			"status":  {"pending": true, "delivering": true, "failed": true},
		}
		points := 0
		for _, sm := range collect(t, reader).ScopeMetrics {
			for _, m := range sm.Metrics {
				for _, set := range metricAttributeSets(t, m) {
					points++
					for _, kv := range set.ToSlice() {
						values, ok := vocabulary[string(kv.Key)]
						require.True(t, ok, "metric %s carries attribute %s", m.Name, kv.Key)
						require.True(t, values[kv.Value.AsString()], "metric %s %s %q is in the vocabulary", m.Name, kv.Key, kv.Value.AsString())
					}
				}
			}
		}
		require.Positive(t, points)
	})

	t.Run("Spans", func(t *testing.T) {
		spans := providers.spans.Ended()
		byName := map[string][]sdktrace.ReadOnlySpan{}
		for _, s := range spans {
			byName[s.Name()] = append(byName[s.Name()], s)
		}
		require.Len(t, byName["outbound.trigger"], 3)
		require.Len(t, byName["outbound.bulk_trigger"], 4)
		require.Len(t, spans, 7)

		triggered := byName["outbound.trigger"][0]
		attrs := spanAttrs(triggered)
		require.Equal(t, "triggered", attrs["outbound.outcome"])
		require.Equal(t, "4242", attrs["outbound.conversation_id"])
		require.Equal(t, "tpl-recovery", attrs["outbound.template_id"])
		require.Equal(t, first.Message.TemplateID, attrs["outbound.template_id"])
		require.Equal(t, "duplicate", spanAttrs(byName["outbound.trigger"][1])["outbound.outcome"])
		failed := byName["outbound.trigger"][2]
		require.Equal(t, "failed", spanAttrs(failed)["outbound.outcome"])
		require.Equal(t, codes.Error, failed.Status().Code)
		require.Equal(t, "auditor_error", spanAttrs(failed)["error.type"], "error.type names the failure as the metric's reason does")
		require.Equal(t, "auditor_error", spanAttrs(failed)["outbound.reason"])

		var outcomes []string
		for _, s := range byName["outbound.bulk_trigger"] {
			outcomes = append(outcomes, spanAttrs(s)["outbound.outcome"])
		}
		require.Equal(t, []string{"submitted", "replayed", "refused_cap_exceeded", "failed"}, outcomes)
		submitted := spanAttrs(byName["outbound.bulk_trigger"][0])
		require.Equal(t, envelopeID.String(), submitted["outbound.bulk_envelope_id"])
		require.Equal(t, "3", submitted["outbound.count"])
	})

	t.Run("NoActorOrBodyAnywhere", func(t *testing.T) {
		for _, s := range providers.spans.Ended() {
			texts := []string{s.Name(), s.Status().Description}
			for _, kv := range s.Attributes() {
				texts = append(texts, string(kv.Key), kv.Value.String())
			}
			for _, e := range s.Events() {
				texts = append(texts, e.Name)
				for _, kv := range e.Attributes {
					texts = append(texts, kv.Value.String())
				}
			}
			for _, text := range texts {
				require.NotContains(t, text, "secret", "span %s leaks the actor, a body or data", s.Name())
			}
		}
		for _, sm := range collect(t, reader).ScopeMetrics {
			for _, m := range sm.Metrics {
				for _, set := range metricAttributeSets(t, m) {
					for _, kv := range set.ToSlice() {
						v := kv.Value.String()
						require.NotContains(t, v, "secret")
						require.NotContains(t, v, "4242")
						require.NotContains(t, v, "tpl-")
						require.NotContains(t, v, envelopeID.String())
					}
				}
			}
		}
	})
}

func TestDeliveryTelemetry(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	reader, providers := newTelemetryRecorder()
	const (
		ok        = 5001 // delivered at once
		hopeless  = 5002 // fails both attempts: discarded
		panicky   = 5003 // panics once, then delivered
		slow      = 5004 // runs past the timeout once, then delivered
		cancelled = 5005 // cancelled behind the worker's back
		permanent = 5006 // fails permanently: discarded at once
		limited   = 5007 // rate-limited once, then delivered
	)
	var mu sync.Mutex
	seen := map[int64]int{}
	notifier := outbound.NotifierFunc(func(ctx context.Context, msg *outbound.Message) error {
		mu.Lock()
		seen[msg.ConversationID]++
		n := seen[msg.ConversationID]
		mu.Unlock()
		switch {
		case msg.ConversationID == hopeless:
			return errors.New("secret-error-text")
		case msg.ConversationID == panicky && n == 1:
			panic("boom")
		case msg.ConversationID == slow && n == 1:
			<-ctx.Done()
			return ctx.Err()
		case msg.ConversationID == permanent:
			return outbound.Permanent(errors.New("secret-error-text"))
		case msg.ConversationID == limited && n == 1:
			return outbound.RetryAfter(100*time.Millisecond, errors.New("secret-error-text"))
		}
		return nil
	})
	config := &outbound.Config{
		Notifier: notifier, MaxAttempts: 2, NotifyTimeout: 200 * time.Millisecond,
		TracerProvider: providers.tracer, MeterProvider: providers.meter,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	b := setup(t, working(), withConfig(config))

	var ids []uuid.UUID
	for _, id := range []int64{ok, hopeless, panicky, slow, permanent, limited} {
		res := mustTrigger(ctx, t, b.client, id, &outbound.TriggerOpts{TemplateID: "tpl-x", Content: "secret body", Actor: "secret actor"})
		ids = append(ids, res.Message.ID)
	}
	// Cancelled behind the worker's back in the trigger's own transaction,
	// so that no worker can deliver it first.
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	res, err := b.client.TriggerTx(ctx, tx, cancelled, &outbound.TriggerOpts{TemplateID: "tpl-x"})
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "UPDATE "+table(b.schema, "messages")+" SET status = 'cancelled' WHERE id = $1", res.Message.ID)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	waitForStatus(t, b.client, ids, outbound.MessageStatusSent, outbound.MessageStatusDiscarded)

	// A second client without a notifier: its deliveries are no-ops.
	noop := setup(t, working(), withConfig(&outbound.Config{TracerProvider: providers.tracer, MeterProvider: providers.meter}))
	res = mustTrigger(ctx, t, noop.client, ok, &outbound.TriggerOpts{TemplateID: "tpl-x"})
	waitForStatus(t, noop.client, []uuid.UUID{res.Message.ID}, outbound.MessageStatusSent)

	// Stopping waits for running attempts, which record on their way out.
	require.NoError(t, b.client.Stop(ctx))
	require.NoError(t, noop.client.Stop(ctx))

	require.Equal(t, map[string]int64{
		"sent/notifier_ok":                   4, // ok, panicky, slow, limited
		"failed/notifier_returned_error":     1, // hopeless, first attempt
		"discarded/notifier_returned_error":  1, // hopeless, last attempt
		"failed/notifier_panicked":           1,
		"failed/notifier_timeout":            1,
		"discarded/notifier_permanent_error": 1,
		"failed/notifier_retry_after":        1,
		"no_op/cancelled":                    1,
		"no_op/no_notifier_configured":       1,
	}, deliveryCounts(t, reader))
	durations := map[string]int64{}
	for key, n := range pointSums(t, reader, "outbound.delivery.duration", byOutcomeReason) {
		durations[key] = int64(n)
	}
	require.Equal(t, deliveryCounts(t, reader), durations, "one duration per attempt, with the same outcome and reason")

	var deliverSpans int
	for _, s := range providers.spans.Ended() {
		if s.Name() != "outbound.deliver" {
			continue
		}
		deliverSpans++
		attrs := spanAttrs(s)
		require.NotEmpty(t, attrs["outbound.message_id"])
		require.NotEmpty(t, attrs["outbound.conversation_id"])
		require.Equal(t, "tpl-x", attrs["outbound.template_id"])
		require.NotEmpty(t, attrs["outbound.attempt"])
		require.NotEmpty(t, attrs["outbound.reason"])
		if attrs["outbound.outcome"] == "failed" || attrs["outbound.outcome"] == "discarded" {
			require.Equal(t, codes.Error, s.Status().Code)
			require.NotEmpty(t, attrs["error.type"])
		} else {
			require.Equal(t, codes.Unset, s.Status().Code, "outcome %s", attrs["outbound.outcome"])
		}
		for k, v := range attrs {
			require.NotContains(t, v, "secret actor", k)
			require.NotContains(t, v, "secret body", k)
			require.NotContains(t, v, "secret-error-text", k)
		}
	}
	require.Equal(t, 12, deliverSpans, "one span per attempt")
}
