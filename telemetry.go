package outbound

import "github.com/cairnloop/outbound/internal/telemetry"

// ScopeName is the instrumentation scope of the library's tracer and meter.
// Spans and metrics are recorded by package internal/telemetry, from one
// vocabulary of outcomes and reasons.
const ScopeName = telemetry.ScopeName
