package outbound

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cairnloop/outbound/internal/telemetry"
	"github.com/cairnloop/outbound/internal/telemetry/telemetrytest"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// TestTelemetryClassification checks, for each outcome of each call, the span
// (status, outcome, reason, error.type), the metric attributes and, for a
// delivery, in internal/delivery's tests: each call's result is classified once,
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
			{"Triggered", &TriggerResult{Message: msg}, nil, codes.Unset, telemetrytest.Set(telemetry.OutcomeTriggered, "")},
			{"Duplicate", &TriggerResult{Message: msg, Duplicate: true}, nil, codes.Unset, telemetrytest.Set(telemetry.OutcomeDuplicate, "")},
			{"InvalidArgument", nil, invalidArgument("TemplateID", "is required"), codes.Error, telemetrytest.Set(telemetry.OutcomeFailed, telemetry.ReasonInvalidArgument)},
			{"SchemaMismatch", nil, schemaMismatch("s", "is old"), codes.Error, telemetrytest.Set(telemetry.OutcomeFailed, telemetry.ReasonSchemaMismatch)},
			{"AuditorError", nil, &auditorError{errors.New("down")}, codes.Error, telemetrytest.Set(telemetry.OutcomeFailed, telemetry.ReasonAuditorError)},
			{"ContextDone", nil, fmt.Errorf("outbound: begin: %w", context.DeadlineExceeded), codes.Error, telemetrytest.Set(telemetry.OutcomeFailed, telemetry.ReasonContextDone)},
			{"DatabaseError", nil, fmt.Errorf("outbound: insert messages: %w", pgErr), codes.Error, telemetrytest.Set(telemetry.OutcomeFailed, telemetry.ReasonDatabaseError)},
			{"NotFound", nil, fmt.Errorf("%w: message", ErrNotFound), codes.Error, telemetrytest.Set(telemetry.OutcomeFailed, telemetry.ReasonNotFound)},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				record := func(tel *telemetry.Telemetry, span trace.Span) {
					tel.RecordTrigger(context.Background(), span, classifyTrigger(tc.res, tc.err), tc.err, time.Now())
				}
				got := telemetrytest.RecordOnce(t, telemetry.SpanTrigger, telemetry.MetricTriggerMessages, record)
				require.Equal(t, tc.status, got.SpanStatus)
				telemetrytest.RequireOneVocabulary(t, got, tc.want)
				require.Equal(t, map[attribute.Set]int64{tc.want: 1}, got.Counts)
				require.Equal(t, map[attribute.Set]int64{tc.want: 1}, telemetrytest.RecordOnce(t, telemetry.SpanTrigger, telemetry.MetricTriggerDuration, record).Counts)
			})
		}
		// TriggerTx's message is staged: its commit is the caller's.
		t.Run("Staged", func(t *testing.T) {
			t.Parallel()
			got := telemetrytest.RecordOnce(t, telemetry.SpanTrigger, telemetry.MetricTriggerMessages, func(tel *telemetry.Telemetry, span trace.Span) {
				tel.RecordTrigger(context.Background(), span, classifyTrigger(&TriggerResult{Message: msg}, nil).Staged(), nil, time.Now())
			})
			require.Equal(t, map[attribute.Set]int64{telemetrytest.Set(telemetry.OutcomeStaged, ""): 1}, got.Counts)
			got = telemetrytest.RecordOnce(t, telemetry.SpanTrigger, telemetry.MetricTriggerMessages, func(tel *telemetry.Telemetry, span trace.Span) {
				tel.RecordTrigger(context.Background(), span, classifyTrigger(&TriggerResult{Message: msg, Duplicate: true}, nil).Staged(), nil, time.Now())
			})
			require.Equal(t, map[attribute.Set]int64{telemetrytest.Set(telemetry.OutcomeDuplicate, ""): 1}, got.Counts)
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
			{"Submitted", submitted, 0, nil, codes.Unset, telemetrytest.Set(telemetry.OutcomeSubmitted, ""),
				map[attribute.Set]int64{telemetrytest.Set(telemetry.OutcomeTriggered, ""): 5}},
			{"SubmittedWithDuplicates", submitted, 2, nil, codes.Unset, telemetrytest.Set(telemetry.OutcomeSubmitted, ""),
				map[attribute.Set]int64{telemetrytest.Set(telemetry.OutcomeTriggered, ""): 3, telemetrytest.Set(telemetry.OutcomeDuplicate, ""): 2}},
			{"Replayed", &BulkTriggerResult{Envelope: &Envelope{}, Replayed: true}, 0, nil, codes.Unset, telemetrytest.Set(telemetry.OutcomeReplayed, ""),
				map[attribute.Set]int64{telemetrytest.Set(telemetry.OutcomeReplayed, ""): 5}},
			{"Refused", nil, 0, &BatchTooLargeError{Count: count, Cap: 2, EnvelopeID: uuid.New()}, codes.Error,
				telemetrytest.Set(telemetry.OutcomeRefusedCapExceeded, telemetry.ReasonBatchTooLarge), map[attribute.Set]int64{telemetrytest.Set(telemetry.OutcomeRefused, ""): 5}},
			{"RefusalNotRecorded", nil, 0, errors.Join(&BatchTooLargeError{Count: count, Cap: 2}, pgErr), codes.Error,
				telemetrytest.Set(telemetry.OutcomeRefusedCapExceededAuditFailed, telemetry.ReasonBatchTooLarge), map[attribute.Set]int64{telemetrytest.Set(telemetry.OutcomeRefused, ""): 5}},
			{"IdempotencyConflict", nil, 0, fmt.Errorf("%w: different body", ErrIdempotencyConflict), codes.Error,
				telemetrytest.Set(telemetry.OutcomeFailed, telemetry.ReasonIdempotencyConflict), map[attribute.Set]int64{telemetrytest.Set(telemetry.OutcomeFailed, telemetry.ReasonIdempotencyConflict): 5}},
			{"InvalidArgument", nil, 0, invalidArgument("conversationIDs", "repeats 7"), codes.Error,
				telemetrytest.Set(telemetry.OutcomeFailed, telemetry.ReasonInvalidArgument), map[attribute.Set]int64{telemetrytest.Set(telemetry.OutcomeFailed, telemetry.ReasonInvalidArgument): 5}},
			{"DatabaseError", nil, 0, pgErr, codes.Error,
				telemetrytest.Set(telemetry.OutcomeFailed, telemetry.ReasonDatabaseError), map[attribute.Set]int64{telemetrytest.Set(telemetry.OutcomeFailed, telemetry.ReasonDatabaseError): 5}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				record := func(tel *telemetry.Telemetry, span trace.Span) {
					tel.RecordBulk(context.Background(), span, count, classifyBulk(count, tc.res, tc.duplicates, tc.err), tc.err, time.Now())
				}
				got := telemetrytest.RecordOnce(t, telemetry.SpanBulkTrigger, telemetry.MetricBulkTriggerDuration, record)
				require.Equal(t, tc.status, got.SpanStatus)
				telemetrytest.RequireOneVocabulary(t, got, tc.want)
				require.Equal(t, map[attribute.Set]int64{tc.want: 1}, got.Counts, "one call")
				require.Equal(t, tc.messages, telemetrytest.RecordOnce(t, telemetry.SpanBulkTrigger, telemetry.MetricTriggerMessages, record).Counts)
			})
		}
		t.Run("Staged", func(t *testing.T) {
			t.Parallel()
			record := func(tel *telemetry.Telemetry, span trace.Span) {
				tel.RecordBulk(context.Background(), span, count, classifyBulk(count, submitted, 1, nil).Staged(), nil, time.Now())
			}
			require.Equal(t, map[attribute.Set]int64{telemetrytest.Set(telemetry.OutcomeStaged, ""): 4, telemetrytest.Set(telemetry.OutcomeDuplicate, ""): 1},
				telemetrytest.RecordOnce(t, telemetry.SpanBulkTrigger, telemetry.MetricTriggerMessages, record).Counts)
			require.Equal(t, map[attribute.Set]int64{telemetrytest.Set(telemetry.OutcomeStaged, ""): 1},
				telemetrytest.RecordOnce(t, telemetry.SpanBulkTrigger, telemetry.MetricBulkTriggerDuration, record).Counts)
		})
	})
}
