// Package telemetry records the library's spans and metrics: the
// instruments, made once per client, and what each call and delivery
// attempt records, from the one vocabulary of outcomes and reasons in
// vocabulary.go. Metric attributes come from that vocabulary alone: never an
// id, an actor or a body.
package telemetry

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/cairnloop/outbound/outboundtype"
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
	SpanTrigger     = "outbound.trigger"
	SpanBulkTrigger = "outbound.bulk_trigger"
	SpanDeliver     = "outbound.deliver"

	// Names follow OpenTelemetry's semantic conventions: dot-separated
	// namespaces under outbound, then what is measured; a unit in the
	// instrument's unit, never in its name; a duration histogram per
	// operation, whose count is the operation's count; plural only for
	// counters of things.
	MetricTriggerMessages     = "outbound.trigger.messages"
	MetricTriggerDuration     = "outbound.trigger.duration"
	MetricBulkTriggerDuration = "outbound.bulk_trigger.duration"
	MetricDeliveryAttempts    = "outbound.delivery.attempts"
	MetricDeliveryDuration    = "outbound.delivery.duration"
	// Not outbound.message.count, OpenTelemetry's form for a gauge of
	// things: Prometheus reserves the _count suffix for histograms and
	// summaries, so that a query of outbound_message_count would be
	// ambiguous, and its linter (promtool check metrics) flags it. Where the
	// two collide, Prometheus wins.
	MetricMessageBacklog       = "outbound.message.backlog"
	MetricMessageOldestPending = "outbound.message.oldest_pending.age"
	MetricMessageRateLimited   = "outbound.message.rate_limited"
	MetricMessageDuration      = "outbound.message.duration"
	MetricSubscriptionDropped  = "outbound.subscription.dropped_events"
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

// Span attribute keys. Spans may carry ids for tracing; never actor or body.
const (
	AttrOutcome        = attribute.Key("outbound.outcome")
	AttrConversationID = attribute.Key("outbound.conversation_id")
	AttrTemplateID     = attribute.Key("outbound.template_id")
	AttrBulkEnvelopeID = attribute.Key("outbound.bulk_envelope_id")
	AttrCount          = attribute.Key("outbound.count")
	AttrMessageID      = attribute.Key("outbound.message_id")
	AttrAttempt        = attribute.Key("outbound.attempt")
	AttrReason         = attribute.Key("outbound.reason")
	AttrErrorType      = attribute.Key("error.type")
)

// Metric attribute keys: outcome everywhere; reason on deliveries and on
// failed triggers; status on outbound.message.backlog and
// outbound.message.duration; kind, an outboundtype.EventKind, on
// outbound.subscription.dropped_events.
const (
	MetricOutcome = attribute.Key("outcome")
	MetricReason  = attribute.Key("reason")
	MetricStatus  = attribute.Key("status")
	MetricKind    = attribute.Key("kind")
)

// Telemetry holds the instruments, made once in New.
type Telemetry struct {
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

func New(tp trace.TracerProvider, mp metric.MeterProvider) *Telemetry {
	meter := mp.Meter(ScopeName)
	t := &Telemetry{tracer: tp.Tracer(ScopeName), meter: meter}
	var err error
	// Instrument errors go to otel.Handle: instrumentation never fails a call.
	// The returned instruments are still usable (no-ops) when err is set.
	if t.triggerMessages, err = meter.Int64Counter(MetricTriggerMessages,
		metric.WithDescription("Messages asked for by Trigger, TriggerTx, BulkTrigger and BulkTriggerTx, one per recipient, by what became of each: "+
			"triggered (committed), staged (written in the caller's transaction, which may yet roll back), duplicate (a live message held its dedup key), "+
			"replayed (a bulk retried with its envelope id, already written), refused (a bulk over the cap) or failed (with a reason)."),
		metric.WithUnit("{message}")); err != nil {
		otel.Handle(err)
	}
	if t.triggerDuration, err = meter.Float64Histogram(MetricTriggerDuration,
		metric.WithDescription("Duration of Trigger and TriggerTx calls, by outcome: its count is the number of calls."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(triggerDurationBuckets...)); err != nil {
		otel.Handle(err)
	}
	if t.bulkTriggerDuration, err = meter.Float64Histogram(MetricBulkTriggerDuration,
		metric.WithDescription("Duration of BulkTrigger and BulkTriggerTx calls, by outcome: its count is the number of calls."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(triggerDurationBuckets...)); err != nil {
		otel.Handle(err)
	}
	if t.deliveryAttempts, err = meter.Int64Counter(MetricDeliveryAttempts,
		metric.WithDescription("Delivery attempts by outcome and reason."),
		metric.WithUnit("{attempt}")); err != nil {
		otel.Handle(err)
	}
	if t.deliveryDuration, err = meter.Float64Histogram(MetricDeliveryDuration,
		metric.WithDescription("Duration of delivery attempts, from the claim to the recorded result, by outcome and reason."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(deliveryDurationBuckets...)); err != nil {
		otel.Handle(err)
	}
	if t.messageDuration, err = meter.Float64Histogram(MetricMessageDuration,
		metric.WithDescription("Time from a message's trigger, or the later time it was scheduled for, to the final status a delivery attempt gave it, by that status: "+
			"sent, discarded, cancelled (while in flight) or unconfirmed."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(messageDurationBuckets...)); err != nil {
		otel.Handle(err)
	}
	if t.eventsDropped, err = meter.Int64Counter(MetricSubscriptionDropped,
		metric.WithDescription("Final-outcome events that Subscribe dropped because a subscriber's buffer was full, by event kind."),
		metric.WithUnit("{event}")); err != nil {
		otel.Handle(err)
	}
	return t
}

// Tracer is the library's tracer, whose spans the Record methods end.
func (t *Telemetry) Tracer() trace.Tracer { return t.tracer }

// RecordDroppedEvent counts an event of the kind that a subscriber's full
// buffer dropped.
func (t *Telemetry) RecordDroppedEvent(ctx context.Context, kind outboundtype.EventKind) {
	t.eventsDropped.Add(ctx, 1, metric.WithAttributes(MetricKind.String(string(kind))))
}

// attrs returns the attribute set of one outcome and, unless empty, one
// reason, both from fixed vocabularies.
func (t *Telemetry) attrs(o Outcome, r Reason) metric.MeasurementOption {
	key := [2]string{string(o), string(r)}
	if set, ok := t.sets.Load(key); ok {
		return set.(metric.MeasurementOption)
	}
	kvs := []attribute.KeyValue{MetricOutcome.String(string(o))}
	if r != "" {
		kvs = append(kvs, MetricReason.String(string(r)))
	}
	set := metric.WithAttributeSet(attribute.NewSet(kvs...))
	t.sets.Store(key, set)
	return set
}

// TriggerTally is what one Trigger or BulkTrigger call records, classified
// once from its result by classifyTrigger or classifyBulk.
type TriggerTally struct {
	Outcome Outcome
	// Reason says why the call failed; empty unless outcome is failed.
	Reason Reason
	// Triggered counts the recipients whose message was written, and
	// duplicates those whose dedup key a live message already held.
	Triggered, Duplicates int
}

// Staged is the tally of a call made in the caller's transaction: what it
// wrote is staged, not triggered, until a commit the library cannot see.
func (t TriggerTally) Staged() TriggerTally {
	if t.Outcome == OutcomeTriggered || t.Outcome == OutcomeSubmitted {
		t.Outcome = OutcomeStaged
	}
	return t
}

// written is the outcome of the messages the call wrote: triggered, or
// staged in the caller's transaction.
func (t TriggerTally) written() Outcome {
	if t.Outcome == OutcomeStaged {
		return OutcomeStaged
	}
	return OutcomeTriggered
}

// RecordTrigger ends a Trigger call's span, which ended in err, and records
// the call.
func (t *Telemetry) RecordTrigger(ctx context.Context, span trace.Span, tally TriggerTally, err error, start time.Time) {
	endSpan(span, tally.Outcome, tally.Reason, err)
	set := t.attrs(tally.Outcome, tally.Reason)
	t.triggerMessages.Add(ctx, 1, set)
	t.triggerDuration.Record(ctx, time.Since(start).Seconds(), set)
}

// RecordBulk ends a BulkTrigger call's span, which ended in err, and records
// the call of count recipients.
func (t *Telemetry) RecordBulk(ctx context.Context, span trace.Span, count int, tally TriggerTally, err error, start time.Time) {
	endSpan(span, tally.Outcome, tally.Reason, err)
	t.bulkTriggerDuration.Record(ctx, time.Since(start).Seconds(), t.attrs(tally.Outcome, tally.Reason))
	// A bulk is N triggers: each recipient counts once in
	// outbound.trigger.messages, by what became of it.
	switch tally.Outcome {
	case OutcomeFailed:
		t.triggerMessages.Add(ctx, int64(count), t.attrs(OutcomeFailed, tally.Reason))
	case OutcomeReplayed:
		t.triggerMessages.Add(ctx, int64(count), t.attrs(OutcomeReplayed, ""))
	case OutcomeRefusedCapExceeded, OutcomeRefusedCapExceededAuditFailed:
		t.triggerMessages.Add(ctx, int64(count), t.attrs(OutcomeRefused, ""))
	default:
		if tally.Triggered > 0 {
			t.triggerMessages.Add(ctx, int64(tally.Triggered), t.attrs(tally.written(), ""))
		}
		if tally.Duplicates > 0 {
			t.triggerMessages.Add(ctx, int64(tally.Duplicates), t.attrs(OutcomeDuplicate, ""))
		}
	}
}

// RecordDelivery ends a delivery attempt's span, counts the attempt and
// records its duration, all from its one classification: its outcome, its
// reason, and the error that failed it (nil unless it failed).
func (t *Telemetry) RecordDelivery(ctx context.Context, span trace.Span, o Outcome, r Reason, failure error, start time.Time) {
	endSpan(span, o, r, failure)
	set := t.attrs(o, r)
	t.deliveryAttempts.Add(ctx, 1, set)
	t.deliveryDuration.Record(ctx, time.Since(start).Seconds(), set)
}

// RecordFinal records the time a message took from when it was due (its
// trigger, or the later time it was scheduled for) to the final status an
// attempt gave it.
func (t *Telemetry) RecordFinal(ctx context.Context, msg *outboundtype.Message, status outboundtype.MessageStatus) {
	set, ok := t.statusSets.Load(status)
	if !ok {
		set = metric.WithAttributeSet(attribute.NewSet(MetricStatus.String(string(status))))
		t.statusSets.Store(status, set)
	}
	due := msg.ScheduledAt
	if due.Before(msg.CreatedAt) {
		due = msg.CreatedAt
	}
	t.messageDuration.Record(ctx, max(time.Since(due).Seconds(), 0), set.(metric.MeasurementOption))
}

// endSpan sets the span's outcome and reason and, on error, its error status
// and error.type, named as the metric names it.
func endSpan(span trace.Span, o Outcome, r Reason, err error) {
	span.SetAttributes(AttrOutcome.String(string(o)))
	if r != "" {
		span.SetAttributes(AttrReason.String(string(r)))
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(AttrErrorType.String(ErrorType(r, err)))
	}
	span.End()
}
