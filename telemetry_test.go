package outbound_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

type telemetryProviders struct {
	tracer *sdktrace.TracerProvider
	meter  *sdkmetric.MeterProvider
	spans  *tracetest.SpanRecorder
}

// newTelemetryRecorder returns a manual metric reader and in-memory providers.
func newTelemetryRecorder() (*sdkmetric.ManualReader, *telemetryProviders) {
	reader := sdkmetric.NewManualReader()
	spans := tracetest.NewSpanRecorder()
	return reader, &telemetryProviders{
		tracer: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)),
		meter:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
		spans:  spans,
	}
}

func collect(t *testing.T, reader *sdkmetric.ManualReader) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	return rm
}

// counterByOutcome sums an int64 counter's points by their outcome attribute.
func counterByOutcome(t *testing.T, reader *sdkmetric.ManualReader, name string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, sm := range collect(t, reader).ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			require.True(t, ok, "%s is an int64 sum", name)
			for _, dp := range sum.DataPoints {
				v, _ := dp.Attributes.Value("outcome")
				out[v.AsString()] += dp.Value
			}
		}
	}
	return out
}
