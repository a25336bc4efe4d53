package outbound

import (
	"context"
	"errors"

	"github.com/cairnloop/outbound/internal/telemetry"
)

// reasonOf names the failure of a call that returned err, by the library's
// own errors. Any other error is the database's: telemetry.ReasonDatabaseError, whose
// span names the error's Go type (telemetry.ErrorType).
func reasonOf(err error) telemetry.Reason {
	var audit *auditorError
	switch {
	case errors.Is(err, ErrInvalidArgument):
		return telemetry.ReasonInvalidArgument
	case errors.Is(err, ErrSchemaMismatch):
		return telemetry.ReasonSchemaMismatch
	case errors.Is(err, ErrBatchTooLarge):
		return telemetry.ReasonBatchTooLarge
	case errors.Is(err, ErrIdempotencyConflict):
		return telemetry.ReasonIdempotencyConflict
	case errors.Is(err, ErrNotFound):
		return telemetry.ReasonNotFound
	case errors.Is(err, ErrNotCancellable):
		return telemetry.ReasonNotCancellable
	case errors.As(err, &audit):
		return telemetry.ReasonAuditorError
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return telemetry.ReasonContextDone
	}
	return telemetry.ReasonDatabaseError
}
