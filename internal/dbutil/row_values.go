package dbutil

import (
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// PgUUID passes a uuid to pgx in PostgreSQL's binary format; a uuid.UUID
// goes through its driver.Valuer, as text parsed back.
func PgUUID(id uuid.UUID) pgtype.UUID {
	return pgtype.UUID{Bytes: id, Valid: true}
}

// NullIfEmpty passes "" as SQL NULL, for an optional text column.
func NullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Deref returns *p, or the zero value for nil.
func Deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// NullIfZero passes 0 as SQL NULL: a number left to the default.
func NullIfZero(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}

// NullIfZeroTime passes the zero time as SQL NULL: a time left unset.
func NullIfZeroTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// NullIfNilUUID passes uuid.Nil as SQL NULL: no envelope, say.
func NullIfNilUUID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}
