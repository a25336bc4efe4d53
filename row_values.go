package outbound

import (
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// pgUUID passes a uuid to pgx in PostgreSQL's binary format; a uuid.UUID
// goes through its driver.Valuer, as text parsed back.
func pgUUID(id uuid.UUID) pgtype.UUID {
	return pgtype.UUID{Bytes: id, Valid: true}
}

// nullIfEmpty passes "" as SQL NULL, for an optional text column.
func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// deref returns *p, or the zero value for nil.
func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// nullIfZero passes 0 as SQL NULL: a number left to the default.
func nullIfZero(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}

// nullIfZeroTime passes the zero time as SQL NULL: a time left unset.
func nullIfZeroTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// nullIfNilUUID passes uuid.Nil as SQL NULL: no envelope, say.
func nullIfNilUUID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}
