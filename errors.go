package outbound

import (
	"errors"
	"fmt"

	"github.com/cairnloop/outbound/outboundtype"
)

// invalidArgument returns an *InvalidArgumentError: the field, and what is
// wrong with it. The helpers here name the leaf's types as outboundtype's,
// as River's code names rivertype's: the same types as the root's aliases.
func invalidArgument(field, format string, args ...any) error {
	return &outboundtype.InvalidArgumentError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// withFieldPrefix prefixes the field of an *InvalidArgumentError in err, as
// the options of the call name it; any other error is returned as is.
func withFieldPrefix(prefix string, err error) error {
	var argErr *outboundtype.InvalidArgumentError
	if errors.As(err, &argErr) {
		argErr.Field = prefix + argErr.Field
	}
	return err
}

// schemaMismatch returns an error matching ErrSchemaMismatch about one schema.
func schemaMismatch(schema, format string, args ...any) error {
	return fmt.Errorf("%w: schema %q %s", outboundtype.ErrSchemaMismatch, schema, fmt.Sprintf(format, args...))
}

// auditorError is an error the Auditor returned, kept apart from the
// database's so that a failed trigger's telemetry can say which it was.
type auditorError struct{ err error }

func (e *auditorError) Error() string { return "outbound: auditor: " + e.err.Error() }
func (e *auditorError) Unwrap() error { return e.err }
