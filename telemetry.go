package outbound

import (
	"context"
	"errors"
	"fmt"
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

	metricTriggers            = "outbound.triggers"
	metricBulkTriggers        = "outbound.bulk.triggers"
	metricBulkRecipients      = "outbound.bulk.recipients"
	metricTriggerDuration     = "outbound.trigger.duration"
	metricBulkTriggerDuration = "outbound.bulk_trigger.duration"
	metricDeliveries          = "outbound.deliveries"
)

// outcome is the only metric attribute the trigger paths use.
type outcome string

const (
	outcomeTriggered                     outcome = "triggered"
	outcomeDuplicate                     outcome = "duplicate"
	outcomeFailed                        outcome = "failed"
	outcomeSubmitted                     outcome = "submitted"
	outcomeReplayed                      outcome = "replayed"
	outcomeRefusedCapExceeded            outcome = "refused_cap_exceeded"
	outcomeRefusedCapExceededAuditFailed outcome = "refused_cap_exceeded_audit_failed"

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
)

// reason says why a delivery attempt ended as it did; with outcome, it is the
// only attribute of outbound.deliveries.
type reason string

const (
	reasonNotifierOK            reason = "notifier_ok"
	reasonNotifierReturnedError reason = "notifier_returned_error"
	reasonNotifierTimeout       reason = "notifier_timeout"
	reasonNotifierPanicked      reason = "notifier_panicked"
	// reasonNotifierPermanentError: the notifier returned Permanent(err).
	reasonNotifierPermanentError reason = "notifier_permanent_error"
	// reasonNotifierRetryAfter: the notifier returned RetryAfter(d, err).
	reasonNotifierRetryAfter   reason = "notifier_retry_after"
	reasonNoNotifierConfigured reason = "no_notifier_configured"
	reasonCancelled            reason = "cancelled"
	// reasonWorkerStopped: the worker was stopped while the notifier ran.
	reasonWorkerStopped reason = "worker_stopped"
	// reasonAlreadyFinal: the job ran again for a message already sent or
	// discarded, e.g. retried by hand; nothing was delivered.
	reasonAlreadyFinal reason = "already_final"
	// reasonMessageNotFound: the message row was deleted; the job is
	// cancelled.
	reasonMessageNotFound reason = "message_not_found"
	// reasonDatabaseError: the attempt could not claim its message or record
	// the notifier's result, so it counts as failed and River tries again.
	reasonDatabaseError reason = "database_error"
	// reasonClaimedElsewhere: another attempt holds the message's claim, so
	// this one waits for the claim to run out.
	reasonClaimedElsewhere reason = "claimed_elsewhere"
	// reasonClaimLost: another attempt took the claim over before this one
	// recorded its result.
	reasonClaimLost reason = "claim_lost"
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

// Metric attribute keys: outcome everywhere, reason on outbound.deliveries.
const (
	metricOutcome = attribute.Key("outcome")
	metricReason  = attribute.Key("reason")
)

// telemetry holds the instruments, made once in New.
type telemetry struct {
	tracer              trace.Tracer
	triggers            metric.Int64Counter
	bulkTriggers        metric.Int64Counter
	bulkRecipients      metric.Int64Counter
	triggerDuration     metric.Float64Histogram
	bulkTriggerDuration metric.Float64Histogram
	deliveries          metric.Int64Counter
	// deliverySets caches the attribute set of each (outcome, reason) pair:
	// a delivery is frequent enough for building the set to show.
	deliverySets sync.Map
}

func newTelemetry(tp trace.TracerProvider, mp metric.MeterProvider) *telemetry {
	meter := mp.Meter(ScopeName)
	t := &telemetry{tracer: tp.Tracer(ScopeName)}
	var err error
	// Instrument errors go to otel.Handle: instrumentation never fails a call.
	// The returned instruments are still usable (no-ops) when err is set.
	if t.triggers, err = meter.Int64Counter(metricTriggers,
		metric.WithDescription("Outbound messages triggered, one per recipient, by outcome."),
		metric.WithUnit("{message}")); err != nil {
		otel.Handle(err)
	}
	if t.bulkTriggers, err = meter.Int64Counter(metricBulkTriggers,
		metric.WithDescription("Bulk trigger calls by outcome."),
		metric.WithUnit("{call}")); err != nil {
		otel.Handle(err)
	}
	if t.bulkRecipients, err = meter.Int64Counter(metricBulkRecipients,
		metric.WithDescription("Recipients requested in bulk trigger calls, by the call's outcome."),
		metric.WithUnit("{recipient}")); err != nil {
		otel.Handle(err)
	}
	if t.triggerDuration, err = meter.Float64Histogram(metricTriggerDuration,
		metric.WithDescription("Duration of Trigger calls."),
		metric.WithUnit("s")); err != nil {
		otel.Handle(err)
	}
	if t.bulkTriggerDuration, err = meter.Float64Histogram(metricBulkTriggerDuration,
		metric.WithDescription("Duration of BulkTrigger calls."),
		metric.WithUnit("s")); err != nil {
		otel.Handle(err)
	}
	if t.deliveries, err = meter.Int64Counter(metricDeliveries,
		metric.WithDescription("Delivery attempts by outcome and reason."),
		metric.WithUnit("{attempt}")); err != nil {
		otel.Handle(err)
	}
	return t
}

func outcomeSet(o outcome) metric.MeasurementOption {
	return metric.WithAttributeSet(attribute.NewSet(metricOutcome.String(string(o))))
}

// recordTrigger records a single Trigger call.
func (t *telemetry) recordTrigger(ctx context.Context, o outcome, start time.Time) {
	t.triggers.Add(ctx, 1, outcomeSet(o))
	t.triggerDuration.Record(ctx, time.Since(start).Seconds(), outcomeSet(o))
}

// recordBulk records a BulkTrigger call of count recipients, triggered of
// which were written now and duplicates of which already had a live message.
func (t *telemetry) recordBulk(ctx context.Context, o outcome, count, triggered, duplicates int, start time.Time) {
	t.bulkTriggers.Add(ctx, 1, outcomeSet(o))
	t.bulkRecipients.Add(ctx, int64(count), outcomeSet(o))
	t.bulkTriggerDuration.Record(ctx, time.Since(start).Seconds(), outcomeSet(o))
	// A bulk is N triggers: each recipient counts once in outbound.triggers.
	if triggered > 0 {
		t.triggers.Add(ctx, int64(triggered), outcomeSet(outcomeTriggered))
	}
	if duplicates > 0 {
		t.triggers.Add(ctx, int64(duplicates), outcomeSet(outcomeDuplicate))
	}
	if o == outcomeFailed {
		t.triggers.Add(ctx, int64(count), outcomeSet(outcomeFailed))
	}
}

// recordDelivery ends a delivery attempt's span and counts the attempt, both
// from its one result.
func (t *telemetry) recordDelivery(ctx context.Context, span trace.Span, res deliveryResult) {
	span.SetAttributes(attrReason.String(string(res.reason)))
	var spanErr error
	if res.failed() {
		spanErr = res.err
	}
	endSpan(span, res.outcome, spanErr)
	t.deliveries.Add(ctx, 1, t.deliverySet(res.outcome, res.reason))
}

// deliverySet returns the attribute set of outbound.deliveries for one
// outcome and reason, both from fixed vocabularies.
func (t *telemetry) deliverySet(o outcome, r reason) metric.MeasurementOption {
	key := [2]string{string(o), string(r)}
	if set, ok := t.deliverySets.Load(key); ok {
		return set.(metric.MeasurementOption)
	}
	set := metric.WithAttributeSet(attribute.NewSet(metricOutcome.String(string(o)), metricReason.String(string(r))))
	t.deliverySets.Store(key, set)
	return set
}

// endSpan sets the span's outcome and, on error, its error status.
func endSpan(span trace.Span, o outcome, err error) {
	span.SetAttributes(attrOutcome.String(string(o)))
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(attrErrorType.String(errorType(err)))
	}
	span.End()
}

// errorType names an error's class for the error.type attribute without
// leaking its text.
func errorType(err error) string {
	switch {
	case errors.Is(err, ErrInvalidArgument):
		return "invalid_argument"
	case errors.Is(err, ErrBatchTooLarge):
		return "batch_too_large"
	case errors.Is(err, ErrIdempotencyConflict):
		return "idempotency_conflict"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrNotCancellable):
		return "not_cancellable"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "context"
	}
	var notifierErr *attemptError
	if errors.As(err, &notifierErr) {
		return "notifier_error"
	}
	// Otherwise the type of the innermost error, e.g. *pgconn.PgError: a
	// low-cardinality name, as OpenTelemetry's semantic conventions advise.
	for next := errors.Unwrap(err); next != nil; next = errors.Unwrap(err) {
		err = next
	}
	return fmt.Sprintf("%T", err)
}
