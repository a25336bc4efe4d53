// Package telemetrytest records one call's telemetry on in-memory providers,
// for the tests of the packages that classify a call and record it: the
// root's triggers and internal/delivery's attempts.
package telemetrytest

import (
	"context"
	"testing"

	"github.com/cairnloop/outbound/internal/telemetry"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// Recorded is what one call left in the span and the counters.
type Recorded struct {
	SpanStatus codes.Code
	// SpanOutcome, SpanReason and SpanErrorType are the span's
	// outbound.outcome, outbound.reason and error.type attributes.
	SpanOutcome, SpanReason, SpanErrorType string
	// Counts are the data points of one counter, by their attribute set.
	Counts map[attribute.Set]int64
}

// RecordOnce runs record on fresh in-memory providers, with a span named
// name, and returns what the span and the counter metric hold.
func RecordOnce(t *testing.T, name, metric string, record func(tel *telemetry.Telemetry, span trace.Span)) Recorded {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	spans := tracetest.NewSpanRecorder()
	tel := telemetry.New(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)), sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	_, span := tel.Tracer().Start(context.Background(), name)
	record(tel, span)

	ended := spans.Ended()
	require.Len(t, ended, 1)
	out := Recorded{SpanStatus: ended[0].Status().Code, Counts: map[attribute.Set]int64{}}
	for _, kv := range ended[0].Attributes() {
		switch kv.Key {
		case telemetry.AttrOutcome:
			out.SpanOutcome = kv.Value.AsString()
		case telemetry.AttrReason:
			out.SpanReason = kv.Value.AsString()
		case telemetry.AttrErrorType:
			out.SpanErrorType = kv.Value.AsString()
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
					out.Counts[dp.Attributes] += dp.Value
				}
			case metricdata.Histogram[float64]:
				// A duration histogram's count is the operation's count.
				for _, dp := range data.DataPoints {
					out.Counts[dp.Attributes] += int64(dp.Count)
				}
			}
		}
	}
	return out
}

// Set is a metric attribute set: outcome, and reason unless empty.
func Set(o telemetry.Outcome, r telemetry.Reason) attribute.Set {
	if r == "" {
		return attribute.NewSet(telemetry.MetricOutcome.String(string(o)))
	}
	return attribute.NewSet(telemetry.MetricOutcome.String(string(o)), telemetry.MetricReason.String(string(r)))
}

// RequireOneVocabulary checks that the span names the call's outcome and
// reason as its metric does, and, when it failed, that its error.type is that
// same reason: the Go type of the error only for a database error, which the
// library does not know.
func RequireOneVocabulary(t *testing.T, got Recorded, want attribute.Set) {
	t.Helper()
	outcome, _ := want.Value(telemetry.MetricOutcome)
	require.Equal(t, outcome.AsString(), got.SpanOutcome, "the span's outcome")
	reason, _ := want.Value(telemetry.MetricReason)
	require.Equal(t, reason.AsString(), got.SpanReason, "the span's reason")
	switch {
	case got.SpanStatus != codes.Error:
		require.Empty(t, got.SpanErrorType, "error.type on a span that did not fail")
	case reason.AsString() == string(telemetry.ReasonDatabaseError):
		require.Equal(t, "*pgconn.PgError", got.SpanErrorType, "a database error's error.type")
	default:
		require.Equal(t, reason.AsString(), got.SpanErrorType, "error.type is the metric's reason")
	}
}
