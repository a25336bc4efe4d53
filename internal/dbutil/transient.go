package dbutil

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// RetryTransient runs fn until it succeeds, fails in a way that trying again
// would not mend, or ctx ends, with a short backoff between tries. Two
// failures are mended by trying again. A lost connection: a pool hands out
// idle connections without checking them, so one that the server or a pooler
// dropped meanwhile fails the first statement sent on it, and the pool then
// discards it. And a deadlock or serialization failure, which rolled the
// statement back. fn must be safe to run again after a try whose commit may
// have happened unacknowledged.
func RetryTransient(ctx context.Context, fn func(context.Context) error) error {
	backoff := 10 * time.Millisecond
	for {
		err := fn(ctx)
		if err == nil || !transient(err) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// transient reports whether err says the connection failed or could not be
// made, or the statement was rolled back by a deadlock or a serialization
// failure.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var (
		pgErr      *pgconn.PgError
		connectErr *pgconn.ConnectError
	)
	if errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01") {
		return true
	}
	return errors.As(err, &connectErr) || connectionEnded(err)
}

// BeginTx begins a transaction on the pool. A connection that the server
// ended while it sat idle in the pool (a failover, a pooler's restart,
// pg_terminate_backend) fails its BEGIN, the first statement sent on it, and
// the pool discards it: BEGIN is then tried again on another connection, up
// to once per connection the pool may hold. Nothing was done on a connection
// whose BEGIN failed, so trying again is always safe. A database that cannot
// be reached fails at once: a new connection's error is not tried again.
func BeginTx(ctx context.Context, pool *pgxpool.Pool) (pgx.Tx, error) {
	tries := int(pool.Config().MaxConns) + 1
	for try := 1; ; try++ {
		tx, err := pool.Begin(ctx)
		if err == nil || try == tries || !connectionEnded(err) || ctx.Err() != nil {
			return tx, err
		}
	}
}

// connectionEnded reports whether err says an established connection was
// ended by the server or lost, as opposed to one that could not be made.
func connectionEnded(err error) bool {
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08 is a connection exception; 57P01 to 57P03 say the server
		// ended the session (pg_terminate_backend, a shutdown, a restart).
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	var netErr net.Error
	// SafeToRetry covers a connection found closed before anything was sent.
	return pgconn.SafeToRetry(err) || errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
