package outbound

import (
	"context"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the library's tracer and meter.
const ScopeName = "github.com/cairnloop/outbound"

// Span and metric names. Metric attributes come only from the fixed outcome
// vocabulary below: never an id, an actor or a body.
const (
	spanTrigger     = "outbound.trigger"
	spanBulkTrigger = "outbound.bulk_trigger"
	spanDeliver     = "outbound.deliver"

	// Names follow OpenTelemetry's semantic conventions: dot-separated
	// namespaces under outbound, then what is measured; a unit in the
	// instrument's unit, never in its name; a duration histogram per
	// operation, whose count is the operation's count; plural only for
	// counters of things.
	metricTriggerMessages     = "outbound.trigger.messages"
	metricTriggerDuration     = "outbound.trigger.duration"
	metricBulkTriggerDuration = "outbound.bulk_trigger.duration"
	metricDeliveryAttempts    = "outbound.delivery.attempts"
	metricDeliveryDuration    = "outbound.delivery.duration"
	// Not outbound.message.count, OpenTelemetry's form for a gauge of
	// things: Prometheus reserves the _count suffix for histograms and
	// summaries, so that a query of outbound_message_count would be
	// ambiguous, and its linter (promtool check metrics) flags it. Where the
	// two collide, Prometheus wins.
	metricMessageBacklog       = "outbound.message.backlog"
	metricMessageOldestPending = "outbound.message.oldest_pending.age"
	metricMessageDuration      = "outbound.message.duration"
	metricSubscriptionDropped  = "outbound.subscription.dropped_events"
)

// Bucket boundaries of the duration histograms, in seconds. OpenTelemetry's
// default boundaries (0, 5, 10, … 10000) are meant for milliseconds; these
// are those of its HTTP semantic conventions, which resolve milliseconds.
var triggerDurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// deliveryDurationBuckets add 30 s and 60 s to triggerDurationBuckets: an
// attempt includes the Notifier's call, which may run for NotifyTimeout (30 s
// by default) before it is cut off.
var deliveryDurationBuckets = append(slices.Clone(triggerDurationBuckets), 30, 60)

// messageDurationBuckets are for the time from a message's trigger to its
// final status, which takes in queueing, retries with backoff and rate
// limits: from 50 ms to a day.
var messageDurationBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600}

// outcome is the only metric attribute the trigger paths use.
type outcome string

const (
	outcomeTriggered outcome = "triggered"
	// outcomeStaged: written in the caller's transaction, whose commit the
	// library cannot see; a TriggerTx or BulkTriggerTx.
	outcomeStaged                        outcome = "staged"
	outcomeDuplicate                     outcome = "duplicate"
	outcomeFailed                        outcome = "failed"
	outcomeSubmitted                     outcome = "submitted"
	outcomeReplayed                      outcome = "replayed"
	outcomeRefusedCapExceeded            outcome = "refused_cap_exceeded"
	outcomeRefusedCapExceededAuditFailed outcome = "refused_cap_exceeded_audit_failed"
	// outcomeRefused counts the recipients of a refused bulk in
	// outbound.trigger.messages: no message was written for them.
	outcomeRefused outcome = "refused"

	// Delivery outcomes. failed means the attempt failed and will be
	// retried; discarded means the last attempt failed, or the Notifier
	// said the failure is permanent. cancelled means the attempt failed
	// after CancelEnvelope asked for its message to be cancelled.
	// unconfirmed means the attempt found a claim left by an attempt that
	// never recorded its result, with a cancel requested. no_op means
	// nothing was handed to a notifier.
	outcomeSent        outcome = "sent"
	outcomeDiscarded   outcome = "discarded"
	outcomeCancelled   outcome = "cancelled"
	outcomeUnconfirmed outcome = "unconfirmed"
	outcomeNoOp        outcome = "no_op"
	// outcomeDeferred: the message waits for its rate limit, without an
	// attempt counted; the reason says whose limit.
	outcomeDeferred outcome = "deferred"
)

// Span attribute keys. Spans may carry ids for tracing; never actor or body.
const (
	attrOutcome        = attribute.Key("outbound.outcome")
	attrConversationID = attribute.Key("outbound.conversation_id")
	attrTemplateID     = attribute.Key("outbound.template_id")
	attrBulkEnvelopeID = attribute.Key("outbound.bulk_envelope_id")
	attrCount          = attribute.Key("outbound.count")
	attrMessageID      = attribute.Key("outbound.message_id")
	attrAttempt        = attribute.Key("outbound.attempt")
	attrReason         = attribute.Key("outbound.reason")
	attrErrorType      = attribute.Key("error.type")
)

// Metric attribute keys: outcome everywhere; reason on deliveries and on
// failed triggers; status on outbound.message.backlog and
// outbound.message.duration; kind, an EventKind, on
// outbound.subscription.dropped_events.
const (
	metricOutcome = attribute.Key("outcome")
	metricReason  = attribute.Key("reason")
	metricStatus  = attribute.Key("status")
	metricKind    = attribute.Key("kind")
)

// telemetry holds the instruments, made once in New.
type telemetry struct {
	tracer              trace.Tracer
	meter               metric.Meter
	triggerMessages     metric.Int64Counter
	triggerDuration     metric.Float64Histogram
	bulkTriggerDuration metric.Float64Histogram
	deliveryAttempts    metric.Int64Counter
	deliveryDuration    metric.Float64Histogram
	messageDuration     metric.Float64Histogram
	eventsDropped       metric.Int64Counter
	// statusSets caches the attribute set of each final status.
	statusSets sync.Map
	// sets caches the attribute set of each (outcome, reason) pair: a
	// delivery is frequent enough for building the set to show.
	sets sync.Map
}

func newTelemetry(tp trace.TracerProvider, mp metric.MeterProvider) *telemetry {
	meter := mp.Meter(ScopeName)
	t := &telemetry{tracer: tp.Tracer(ScopeName), meter: meter}
	var err error
	// Instrument errors go to otel.Handle: instrumentation never fails a call.
	// The returned instruments are still usable (no-ops) when err is set.
	if t.triggerMessages, err = meter.Int64Counter(metricTriggerMessages,
		metric.WithDescription("Messages asked for by Trigger, TriggerTx, BulkTrigger and BulkTriggerTx, one per recipient, by what became of each: "+
			"triggered (committed), staged (written in the caller's transaction, which may yet roll back), duplicate (a live message held its dedup key), "+
			"replayed (a bulk retried with its envelope id, already written), refused (a bulk over the cap) or failed (with a reason)."),
		metric.WithUnit("{message}")); err != nil {
		otel.Handle(err)
	}
	if t.triggerDuration, err = meter.Float64Histogram(metricTriggerDuration,
		metric.WithDescription("Duration of Trigger and TriggerTx calls, by outcome: its count is the number of calls."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(triggerDurationBuckets...)); err != nil {
		otel.Handle(err)
	}
	if t.bulkTriggerDuration, err = meter.Float64Histogram(metricBulkTriggerDuration,
		metric.WithDescription("Duration of BulkTrigger and BulkTriggerTx calls, by outcome: its count is the number of calls."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(triggerDurationBuckets...)); err != nil {
		otel.Handle(err)
	}
	if t.deliveryAttempts, err = meter.Int64Counter(metricDeliveryAttempts,
		metric.WithDescription("Delivery attempts by outcome and reason."),
		metric.WithUnit("{attempt}")); err != nil {
		otel.Handle(err)
	}
	if t.deliveryDuration, err = meter.Float64Histogram(metricDeliveryDuration,
		metric.WithDescription("Duration of delivery attempts, from the claim to the recorded result, by outcome and reason."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(deliveryDurationBuckets...)); err != nil {
		otel.Handle(err)
	}
	if t.messageDuration, err = meter.Float64Histogram(metricMessageDuration,
		metric.WithDescription("Time from a message's trigger, or the later time it was scheduled for, to the final status a delivery attempt gave it, by that status: "+
			"sent, discarded, cancelled (while in flight) or unconfirmed."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(messageDurationBuckets...)); err != nil {
		otel.Handle(err)
	}
	if t.eventsDropped, err = meter.Int64Counter(metricSubscriptionDropped,
		metric.WithDescription("Final-outcome events that Subscribe dropped because a subscriber's buffer was full, by event kind."),
		metric.WithUnit("{event}")); err != nil {
		otel.Handle(err)
	}
	return t
}

// recordDroppedEvent counts an event of the kind that a subscriber's full
// buffer dropped.
func (t *telemetry) recordDroppedEvent(ctx context.Context, kind EventKind) {
	t.eventsDropped.Add(ctx, 1, metric.WithAttributes(metricKind.String(string(kind))))
}

// attrs returns the attribute set of one outcome and, unless empty, one
// reason, both from fixed vocabularies.
func (t *telemetry) attrs(o outcome, r reason) metric.MeasurementOption {
	key := [2]string{string(o), string(r)}
	if set, ok := t.sets.Load(key); ok {
		return set.(metric.MeasurementOption)
	}
	kvs := []attribute.KeyValue{metricOutcome.String(string(o))}
	if r != "" {
		kvs = append(kvs, metricReason.String(string(r)))
	}
	set := metric.WithAttributeSet(attribute.NewSet(kvs...))
	t.sets.Store(key, set)
	return set
}

// triggerTally is what one Trigger or BulkTrigger call records, classified
// once from its result by classifyTrigger or classifyBulk.
type triggerTally struct {
	outcome outcome
	// reason says why the call failed; empty unless outcome is failed.
	reason reason
	// triggered counts the recipients whose message was written, and
	// duplicates those whose dedup key a live message already held.
	triggered, duplicates int
}

// staged is the tally of a call made in the caller's transaction: what it
// wrote is staged, not triggered, until a commit the library cannot see.
func (t triggerTally) staged() triggerTally {
	if t.outcome == outcomeTriggered || t.outcome == outcomeSubmitted {
		t.outcome = outcomeStaged
	}
	return t
}

// written is the outcome of the messages the call wrote: triggered, or
// staged in the caller's transaction.
func (t triggerTally) written() outcome {
	if t.outcome == outcomeStaged {
		return outcomeStaged
	}
	return outcomeTriggered
}

// recordTrigger ends a Trigger call's span, which ended in err, and records
// the call.
func (t *telemetry) recordTrigger(ctx context.Context, span trace.Span, tally triggerTally, err error, start time.Time) {
	endSpan(span, tally.outcome, tally.reason, err)
	set := t.attrs(tally.outcome, tally.reason)
	t.triggerMessages.Add(ctx, 1, set)
	t.triggerDuration.Record(ctx, time.Since(start).Seconds(), set)
}

// recordBulk ends a BulkTrigger call's span, which ended in err, and records
// the call of count recipients.
func (t *telemetry) recordBulk(ctx context.Context, span trace.Span, count int, tally triggerTally, err error, start time.Time) {
	endSpan(span, tally.outcome, tally.reason, err)
	t.bulkTriggerDuration.Record(ctx, time.Since(start).Seconds(), t.attrs(tally.outcome, tally.reason))
	// A bulk is N triggers: each recipient counts once in
	// outbound.trigger.messages, by what became of it.
	switch tally.outcome {
	case outcomeFailed:
		t.triggerMessages.Add(ctx, int64(count), t.attrs(outcomeFailed, tally.reason))
	case outcomeReplayed:
		t.triggerMessages.Add(ctx, int64(count), t.attrs(outcomeReplayed, ""))
	case outcomeRefusedCapExceeded, outcomeRefusedCapExceededAuditFailed:
		t.triggerMessages.Add(ctx, int64(count), t.attrs(outcomeRefused, ""))
	default:
		if tally.triggered > 0 {
			t.triggerMessages.Add(ctx, int64(tally.triggered), t.attrs(tally.written(), ""))
		}
		if tally.duplicates > 0 {
			t.triggerMessages.Add(ctx, int64(tally.duplicates), t.attrs(outcomeDuplicate, ""))
		}
	}
}

// recordDelivery ends a delivery attempt's span, counts the attempt and
// records its duration, all from its one classification: its outcome, its
// reason, and the error that failed it (nil unless it failed).
func (t *telemetry) recordDelivery(ctx context.Context, span trace.Span, o outcome, r reason, failure error, start time.Time) {
	endSpan(span, o, r, failure)
	set := t.attrs(o, r)
	t.deliveryAttempts.Add(ctx, 1, set)
	t.deliveryDuration.Record(ctx, time.Since(start).Seconds(), set)
}

// recordFinal records the time a message took from when it was due (its
// trigger, or the later time it was scheduled for) to the final status an
// attempt gave it.
func (t *telemetry) recordFinal(ctx context.Context, f finalOutcome) {
	if f.msg == nil {
		return
	}
	set, ok := t.statusSets.Load(f.status)
	if !ok {
		set = metric.WithAttributeSet(attribute.NewSet(metricStatus.String(string(f.status))))
		t.statusSets.Store(f.status, set)
	}
	due := f.msg.ScheduledAt
	if due.Before(f.msg.CreatedAt) {
		due = f.msg.CreatedAt
	}
	t.messageDuration.Record(ctx, max(time.Since(due).Seconds(), 0), set.(metric.MeasurementOption))
}

// endSpan sets the span's outcome and reason and, on error, its error status
// and error.type, named as the metric names it.
func endSpan(span trace.Span, o outcome, r reason, err error) {
	span.SetAttributes(attrOutcome.String(string(o)))
	if r != "" {
		span.SetAttributes(attrReason.String(string(r)))
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(attrErrorType.String(errorType(r, err)))
	}
	span.End()
}
