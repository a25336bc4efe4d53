package outbound

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cairnloop/outbound/internal/telemetry"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// recorded is what one call left in the span and the counters.
type recorded struct {
	spanStatus codes.Code
	// spanOutcome, spanReason and spanErrorType are the span's
	// outbound.outcome, outbound.reason and error.type attributes.
	spanOutcome, spanReason, spanErrorType string
	// counts are the data points of one counter, by their attribute set.
	counts map[attribute.Set]int64
}

// recordOnce runs record on fresh in-memory providers, with a span named
// name, and returns what the span and the counter metric hold.
func recordOnce(t *testing.T, name, metric string, record func(tel *telemetry.Telemetry, span trace.Span)) recorded {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	spans := tracetest.NewSpanRecorder()
	tel := telemetry.New(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)), sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	_, span := tel.Tracer().Start(context.Background(), name)
	record(tel, span)

	ended := spans.Ended()
	require.Len(t, ended, 1)
	out := recorded{spanStatus: ended[0].Status().Code, counts: map[attribute.Set]int64{}}
	for _, kv := range ended[0].Attributes() {
		switch kv.Key {
		case telemetry.AttrOutcome:
			out.spanOutcome = kv.Value.AsString()
		case telemetry.AttrReason:
			out.spanReason = kv.Value.AsString()
		case telemetry.AttrErrorType:
			out.spanErrorType = kv.Value.AsString()
		}
	}
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != metric {
				continue
			}
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					out.counts[dp.Attributes] += dp.Value
				}
			case metricdata.Histogram[float64]:
				// A duration histogram's count is the operation's count.
				for _, dp := range data.DataPoints {
					out.counts[dp.Attributes] += int64(dp.Count)
				}
			}
		}
	}
	return out
}

// set is a metric attribute set: outcome, and reason unless empty.
func set(o telemetry.Outcome, r telemetry.Reason) attribute.Set {
	if r == "" {
		return attribute.NewSet(telemetry.MetricOutcome.String(string(o)))
	}
	return attribute.NewSet(telemetry.MetricOutcome.String(string(o)), telemetry.MetricReason.String(string(r)))
}

// requireOneVocabulary checks that the span names the call's outcome and
// reason as its metric does, and, when it failed, that its error.type is that
// same reason: the Go type of the error only for a database error, which the
// library does not know.
func requireOneVocabulary(t *testing.T, got recorded, want attribute.Set) {
	t.Helper()
	outcome, _ := want.Value(telemetry.MetricOutcome)
	require.Equal(t, outcome.AsString(), got.spanOutcome, "the span's outcome")
	reason, _ := want.Value(telemetry.MetricReason)
	require.Equal(t, reason.AsString(), got.spanReason, "the span's reason")
	switch {
	case got.spanStatus != codes.Error:
		require.Empty(t, got.spanErrorType, "error.type on a span that did not fail")
	case reason.AsString() == string(telemetry.ReasonDatabaseError):
		require.Equal(t, "*pgconn.PgError", got.spanErrorType, "a database error's error.type")
	default:
		require.Equal(t, reason.AsString(), got.spanErrorType, "error.type is the metric's reason")
	}
}

// TestTelemetryClassification checks, for each outcome of each call, the span
// (status, outcome, reason, error.type), the metric attributes and, for a
// delivery, the final-outcome event: each call's result is classified once,
// from what it returned, and named in one vocabulary.
func TestTelemetryClassification(t *testing.T) {
	t.Parallel()
	msg := &Message{ID: uuid.New()}
	pgErr := &pgconn.PgError{Code: "40001"}

	t.Run("Trigger", func(t *testing.T) {
		t.Parallel()
		cases := []struct {
			name   string
			res    *TriggerResult
			err    error
			status codes.Code
			want   attribute.Set
		}{
			{"Triggered", &TriggerResult{Message: msg}, nil, codes.Unset, set(telemetry.OutcomeTriggered, "")},
			{"Duplicate", &TriggerResult{Message: msg, Duplicate: true}, nil, codes.Unset, set(telemetry.OutcomeDuplicate, "")},
			{"InvalidArgument", nil, invalidArgument("TemplateID", "is required"), codes.Error, set(telemetry.OutcomeFailed, telemetry.ReasonInvalidArgument)},
			{"SchemaMismatch", nil, schemaMismatch("s", "is old"), codes.Error, set(telemetry.OutcomeFailed, telemetry.ReasonSchemaMismatch)},
			{"AuditorError", nil, &auditorError{errors.New("down")}, codes.Error, set(telemetry.OutcomeFailed, telemetry.ReasonAuditorError)},
			{"ContextDone", nil, fmt.Errorf("outbound: begin: %w", context.DeadlineExceeded), codes.Error, set(telemetry.OutcomeFailed, telemetry.ReasonContextDone)},
			{"DatabaseError", nil, fmt.Errorf("outbound: insert messages: %w", pgErr), codes.Error, set(telemetry.OutcomeFailed, telemetry.ReasonDatabaseError)},
			{"NotFound", nil, fmt.Errorf("%w: message", ErrNotFound), codes.Error, set(telemetry.OutcomeFailed, telemetry.ReasonNotFound)},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				record := func(tel *telemetry.Telemetry, span trace.Span) {
					tel.RecordTrigger(context.Background(), span, classifyTrigger(tc.res, tc.err), tc.err, time.Now())
				}
				got := recordOnce(t, telemetry.SpanTrigger, telemetry.MetricTriggerMessages, record)
				require.Equal(t, tc.status, got.spanStatus)
				requireOneVocabulary(t, got, tc.want)
				require.Equal(t, map[attribute.Set]int64{tc.want: 1}, got.counts)
				require.Equal(t, map[attribute.Set]int64{tc.want: 1}, recordOnce(t, telemetry.SpanTrigger, telemetry.MetricTriggerDuration, record).counts)
			})
		}
		// TriggerTx's message is staged: its commit is the caller's.
		t.Run("Staged", func(t *testing.T) {
			t.Parallel()
			got := recordOnce(t, telemetry.SpanTrigger, telemetry.MetricTriggerMessages, func(tel *telemetry.Telemetry, span trace.Span) {
				tel.RecordTrigger(context.Background(), span, classifyTrigger(&TriggerResult{Message: msg}, nil).Staged(), nil, time.Now())
			})
			require.Equal(t, map[attribute.Set]int64{set(telemetry.OutcomeStaged, ""): 1}, got.counts)
			got = recordOnce(t, telemetry.SpanTrigger, telemetry.MetricTriggerMessages, func(tel *telemetry.Telemetry, span trace.Span) {
				tel.RecordTrigger(context.Background(), span, classifyTrigger(&TriggerResult{Message: msg, Duplicate: true}, nil).Staged(), nil, time.Now())
			})
			require.Equal(t, map[attribute.Set]int64{set(telemetry.OutcomeDuplicate, ""): 1}, got.counts)
		})
	})

	t.Run("BulkTrigger", func(t *testing.T) {
		t.Parallel()
		const count = 5
		submitted := &BulkTriggerResult{Envelope: &Envelope{}}
		cases := []struct {
			name       string
			res        *BulkTriggerResult
			duplicates int
			err        error
			status     codes.Code
			want       attribute.Set
			// messages are outbound.trigger.messages' counts: a bulk of
			// five is five messages asked for.
			messages map[attribute.Set]int64
		}{
			{"Submitted", submitted, 0, nil, codes.Unset, set(telemetry.OutcomeSubmitted, ""),
				map[attribute.Set]int64{set(telemetry.OutcomeTriggered, ""): 5}},
			{"SubmittedWithDuplicates", submitted, 2, nil, codes.Unset, set(telemetry.OutcomeSubmitted, ""),
				map[attribute.Set]int64{set(telemetry.OutcomeTriggered, ""): 3, set(telemetry.OutcomeDuplicate, ""): 2}},
			{"Replayed", &BulkTriggerResult{Envelope: &Envelope{}, Replayed: true}, 0, nil, codes.Unset, set(telemetry.OutcomeReplayed, ""),
				map[attribute.Set]int64{set(telemetry.OutcomeReplayed, ""): 5}},
			{"Refused", nil, 0, &BatchTooLargeError{Count: count, Cap: 2, EnvelopeID: uuid.New()}, codes.Error,
				set(telemetry.OutcomeRefusedCapExceeded, telemetry.ReasonBatchTooLarge), map[attribute.Set]int64{set(telemetry.OutcomeRefused, ""): 5}},
			{"RefusalNotRecorded", nil, 0, errors.Join(&BatchTooLargeError{Count: count, Cap: 2}, pgErr), codes.Error,
				set(telemetry.OutcomeRefusedCapExceededAuditFailed, telemetry.ReasonBatchTooLarge), map[attribute.Set]int64{set(telemetry.OutcomeRefused, ""): 5}},
			{"IdempotencyConflict", nil, 0, fmt.Errorf("%w: different body", ErrIdempotencyConflict), codes.Error,
				set(telemetry.OutcomeFailed, telemetry.ReasonIdempotencyConflict), map[attribute.Set]int64{set(telemetry.OutcomeFailed, telemetry.ReasonIdempotencyConflict): 5}},
			{"InvalidArgument", nil, 0, invalidArgument("conversationIDs", "repeats 7"), codes.Error,
				set(telemetry.OutcomeFailed, telemetry.ReasonInvalidArgument), map[attribute.Set]int64{set(telemetry.OutcomeFailed, telemetry.ReasonInvalidArgument): 5}},
			{"DatabaseError", nil, 0, pgErr, codes.Error,
				set(telemetry.OutcomeFailed, telemetry.ReasonDatabaseError), map[attribute.Set]int64{set(telemetry.OutcomeFailed, telemetry.ReasonDatabaseError): 5}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				record := func(tel *telemetry.Telemetry, span trace.Span) {
					tel.RecordBulk(context.Background(), span, count, classifyBulk(count, tc.res, tc.duplicates, tc.err), tc.err, time.Now())
				}
				got := recordOnce(t, telemetry.SpanBulkTrigger, telemetry.MetricBulkTriggerDuration, record)
				require.Equal(t, tc.status, got.spanStatus)
				requireOneVocabulary(t, got, tc.want)
				require.Equal(t, map[attribute.Set]int64{tc.want: 1}, got.counts, "one call")
				require.Equal(t, tc.messages, recordOnce(t, telemetry.SpanBulkTrigger, telemetry.MetricTriggerMessages, record).counts)
			})
		}
		t.Run("Staged", func(t *testing.T) {
			t.Parallel()
			record := func(tel *telemetry.Telemetry, span trace.Span) {
				tel.RecordBulk(context.Background(), span, count, classifyBulk(count, submitted, 1, nil).Staged(), nil, time.Now())
			}
			require.Equal(t, map[attribute.Set]int64{set(telemetry.OutcomeStaged, ""): 4, set(telemetry.OutcomeDuplicate, ""): 1},
				recordOnce(t, telemetry.SpanBulkTrigger, telemetry.MetricTriggerMessages, record).counts)
			require.Equal(t, map[attribute.Set]int64{set(telemetry.OutcomeStaged, ""): 1},
				recordOnce(t, telemetry.SpanBulkTrigger, telemetry.MetricBulkTriggerDuration, record).counts)
		})
	})

	t.Run("Delivery", func(t *testing.T) {
		t.Parallel()
		job := &river.Job[DeliveryArgs]{JobRow: &rivertype.JobRow{ID: 1, Attempt: 1, MaxAttempts: 3}, Args: DeliveryArgs{MessageID: msg.ID}}
		lastJob := &river.Job[DeliveryArgs]{JobRow: &rivertype.JobRow{ID: 1, Attempt: 3, MaxAttempts: 3}, Args: DeliveryArgs{MessageID: msg.ID}}
		claimed := &claim{msg: msg, claimed: true}
		failedCall := notifyResult{err: errors.New("provider said no")}
		permanentCall := notifyResult{err: Permanent(errors.New("550 no such mailbox"))}
		timedOut := notifyResult{err: errors.New("notifier timed out"), timedOut: true}
		panicked := notifyResult{err: errors.New("notifier panicked: boom"), panicked: true}
		retryAfter := notifyResult{err: RetryAfter(time.Minute, errors.New("429"))}
		rateLimited := notifyResult{err: RateLimited(time.Minute, errors.New("429"))}
		with := func(status MessageStatus) *claim { return &claim{msg: &Message{ID: msg.ID, Status: status}} }
		// Each case also says which final-outcome event the attempt
		// publishes, if any.
		cases := []struct {
			name        string
			job         *river.Job[DeliveryArgs]
			facts       attemptFacts
			status      codes.Code
			want        attribute.Set
			eventKind   EventKind
			eventReason EventReason
		}{
			{"Sent", job, attemptFacts{claim: claimed, notified: true, recorded: MessageStatusSent},
				codes.Unset, set(telemetry.OutcomeSent, telemetry.ReasonNotifierOK), EventKindMessageSent, EventReasonNotifierOK},
			{"NoNotifier", job, attemptFacts{claim: claimed, recorded: MessageStatusSent},
				codes.Unset, set(telemetry.OutcomeNoOp, telemetry.ReasonNoNotifierConfigured), EventKindMessageSent, EventReasonNoNotifier},
			{"Failed", job, attemptFacts{claim: claimed, notified: true, notify: failedCall, recorded: MessageStatusFailed},
				codes.Error, set(telemetry.OutcomeFailed, telemetry.ReasonNotifierReturnedError), "", ""},
			{"Discarded", lastJob, attemptFacts{claim: claimed, notified: true, notify: failedCall, recorded: MessageStatusDiscarded},
				codes.Error, set(telemetry.OutcomeDiscarded, telemetry.ReasonNotifierReturnedError), EventKindMessageDiscarded, EventReasonAttemptsExhausted},
			{"DiscardedAsPermanent", job, attemptFacts{claim: claimed, notified: true, notify: permanentCall, recorded: MessageStatusDiscarded},
				codes.Error, set(telemetry.OutcomeDiscarded, telemetry.ReasonNotifierPermanentError), EventKindMessageDiscarded, EventReasonPermanentError},
			{"CancelledInFlight", job, attemptFacts{claim: claimed, notified: true, notify: failedCall, recorded: MessageStatusCancelled},
				codes.Error, set(telemetry.OutcomeCancelled, telemetry.ReasonNotifierReturnedError), EventKindMessageCancelled, EventReasonCancelEnvelope},
			{"ClaimLost", job, attemptFacts{claim: claimed, notified: true, claimLost: true},
				codes.Error, set(telemetry.OutcomeFailed, telemetry.ReasonClaimLost), "", ""},
			{"DatabaseError", job, attemptFacts{claim: claimed, notified: true, dbErr: pgErr},
				codes.Error, set(telemetry.OutcomeFailed, telemetry.ReasonDatabaseError), "", ""},
			{"StoppedBeforeNotifier", job, attemptFacts{dbErr: context.Canceled, stopped: true},
				codes.Error, set(telemetry.OutcomeFailed, telemetry.ReasonWorkerStopped), "", ""},
			{"Unconfirmed", job, attemptFacts{claim: &claim{msg: msg, endedUnconfirmed: true}},
				codes.Unset, set(telemetry.OutcomeUnconfirmed, telemetry.ReasonCancelled), EventKindMessageUnconfirmed, EventReasonResultUnrecorded},
			{"ClaimedElsewhere", job, attemptFacts{claim: &claim{msg: msg, heldFor: time.Second}},
				codes.Unset, set(telemetry.OutcomeNoOp, telemetry.ReasonClaimedElsewhere), "", ""},
			{"MessageNotFound", job, attemptFacts{claim: &claim{}},
				codes.Error, set(telemetry.OutcomeDiscarded, telemetry.ReasonMessageNotFound), "", ""},
			{"NotifierTimeout", job, attemptFacts{claim: claimed, notified: true, notify: timedOut, recorded: MessageStatusFailed},
				codes.Error, set(telemetry.OutcomeFailed, telemetry.ReasonNotifierTimeout), "", ""},
			{"NotifierPanicked", lastJob, attemptFacts{claim: claimed, notified: true, notify: panicked, recorded: MessageStatusDiscarded},
				codes.Error, set(telemetry.OutcomeDiscarded, telemetry.ReasonNotifierPanicked), EventKindMessageDiscarded, EventReasonAttemptsExhausted},
			{"RetryAfter", job, attemptFacts{claim: claimed, notified: true, notify: retryAfter, recorded: MessageStatusFailed},
				codes.Error, set(telemetry.OutcomeFailed, telemetry.ReasonNotifierRetryAfter), "", ""},
			{"NotifierRateLimited", job, attemptFacts{claim: claimed, notified: true, notify: rateLimited, recorded: MessageStatusPending, rateWait: time.Second},
				codes.Unset, set(telemetry.OutcomeDeferred, telemetry.ReasonNotifierRateLimited), "", ""},
			{"RateLimitWait", job, attemptFacts{claim: &claim{msg: msg, rateWait: time.Second}},
				codes.Unset, set(telemetry.OutcomeDeferred, telemetry.ReasonRateLimitWait), "", ""},
			{"Cancelled", job, attemptFacts{claim: with(MessageStatusCancelled)},
				codes.Unset, set(telemetry.OutcomeNoOp, telemetry.ReasonCancelled), "", ""},
			{"AlreadySent", job, attemptFacts{claim: with(MessageStatusSent)},
				codes.Unset, set(telemetry.OutcomeNoOp, telemetry.ReasonAlreadyFinal), "", ""},
			{"AlreadyDiscarded", job, attemptFacts{claim: with(MessageStatusDiscarded)},
				codes.Unset, set(telemetry.OutcomeNoOp, telemetry.ReasonAlreadyFinal), "", ""},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				res := classify(tc.job, tc.facts)
				got := recordOnce(t, telemetry.SpanDeliver, telemetry.MetricDeliveryAttempts, func(tel *telemetry.Telemetry, span trace.Span) {
					tel.RecordDelivery(context.Background(), span, res.outcome, res.reason, res.failure(), time.Now())
				})
				require.Equal(t, tc.status, got.spanStatus)
				requireOneVocabulary(t, got, tc.want)
				require.Equal(t, map[attribute.Set]int64{tc.want: 1}, got.counts)

				ev := res.final.event()
				if tc.eventKind == "" {
					require.Nil(t, ev)
					return
				}
				require.NotNil(t, ev)
				require.Equal(t, tc.eventKind, ev.Kind)
				require.Equal(t, tc.eventReason, ev.Reason)
				require.Equal(t, msg.ID, ev.MessageID)
			})
		}
	})
}
