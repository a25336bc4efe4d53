package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cairnloop/outbound/internal/dbutil"
	"github.com/cairnloop/outbound/outboundtype"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// messageLimit is a message's key and the limit it is under.
type messageLimit struct {
	key   string
	limit outboundtype.RateLimit
	// limited: the key has an entry in Config.RateLimits.
	limited bool
}

// limitOf returns the key and limit of a message.
func (e *Executor) limitOf(msg *outboundtype.Message) messageLimit {
	key := ""
	if e.RateLimitKey != nil {
		key = e.RateLimitKey(msg)
	}
	l, ok := e.RateLimits[key]
	return messageLimit{key: key, limit: l, limited: ok}
}

// ensureRateLimitRow creates a key's rate_limits row once per process; a
// row deleted since is created again when a claim finds it missing.
func (e *Executor) ensureRateLimitRow(ctx context.Context, key string) error {
	if _, ok := e.rateLimitRows.Load(key); ok {
		return nil
	}
	err := dbutil.RetryTransient(ctx, func(ctx context.Context) error {
		_, err := e.Pool.Exec(ctx, e.Queries.EnsureRateLimit, pgx.NamedArgs{"key": key})
		return err
	})
	if err != nil {
		return fmt.Errorf("create rate limit row: %w", err)
	}
	e.rateLimitRows.Store(key, struct{}{})
	return nil
}

// readWait reads a message and how long until its booking with its rate
// limit comes due: zero or less once due, or when it has none.
func (e *Executor) readWait(ctx context.Context, id uuid.UUID) (*outboundtype.Message, time.Duration, error) {
	var (
		msg  *outboundtype.Message
		wait *float64
	)
	err := dbutil.RetryTransient(ctx, func(ctx context.Context) (err error) {
		msg, err = dbutil.ScanMessage(e.Pool.QueryRow(ctx, e.Queries.SelectMessageWait, pgx.NamedArgs{"id": dbutil.PgUUID(id)}), &wait)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	return msg, secondsOf(wait), nil
}

// claimRated claims message id under claimID, counting River's attempt
// number attempt, if its limit lets a call start now. When it does not, it
// returns the message and how long until its booked slot. pgx.ErrNoRows:
// the message is missing or not claimable, or the key's row is missing.
func (e *Executor) claimRated(ctx context.Context, id, claimID uuid.UUID, attempt int, lim messageLimit) (*outboundtype.Message, time.Duration, error) {
	var (
		msg  *outboundtype.Message
		wait *float64
	)
	args := pgx.NamedArgs{
		"id":             dbutil.PgUUID(id),
		"claim_id":       dbutil.PgUUID(claimID),
		"attempt":        attempt,
		"claim_secs":     e.ClaimLength.Seconds(),
		"key":            lim.key,
		"interval_secs":  Interval(lim.limit).Seconds(),
		"tolerance_secs": tolerance(lim.limit).Seconds(),
	}
	// Retrying is safe: a retried claim whose first commit went through
	// finds its own claim id, and takes no second slot.
	err := dbutil.RetryTransient(ctx, func(ctx context.Context) (err error) {
		msg, err = dbutil.ScanMessage(e.Pool.QueryRow(ctx, e.Queries.ClaimMessageRated, args), &wait)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	if wait == nil {
		return msg, 0, nil
	}
	// A wait rounds up to a microsecond: a booking is never due by zero.
	return msg, max(secondsOf(wait), time.Microsecond), nil
}

// recordRateLimited records an attempt whose Notifier returned RateLimited,
// if claimID still holds message id and no cancel was requested: the
// message is pending again, not counting the attempt, and booked for the
// pause's end, which its key's row takes on for every process. It returns
// the wait until the booking, or false when nothing was recorded.
func (e *Executor) recordRateLimited(ctx context.Context, id, claimID uuid.UUID, lim messageLimit, pause time.Duration, lastError string) (time.Duration, bool, error) {
	args := pgx.NamedArgs{
		"id":         dbutil.PgUUID(id),
		"claim_id":   dbutil.PgUUID(claimID),
		"key":        lim.key,
		"pause_secs": pause.Seconds(),
		"last_error": lastError,
	}
	var wait *float64
	err := dbutil.RetryTransient(ctx, func(ctx context.Context) error {
		return e.Pool.QueryRow(ctx, e.Queries.RecordRateLimited, args).Scan(&wait)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("record rate limited: %w", err)
	}
	return secondsOf(wait), true, nil
}

// rateLimitHop is the longest a message waiting for its limit is snoozed at
// once. River holds a job snoozed for longer as scheduled until its
// scheduler's next run, every 5 seconds, so that it would wake up to 5
// seconds late; a shorter snooze leaves the job available to the first
// fetch after its time. A longer wait is made of hops, each one fetch.
const rateLimitHop = 4 * time.Second

// rateWaitSlack is how early a booking counts as due: a process's clock that
// runs a little ahead of the database's wakes a message that much early, and
// it goes to the claim rather than back to sleep.
const rateWaitSlack = 50 * time.Millisecond

// Interval is the time between two calls at the limit's steady rate.
func Interval(l outboundtype.RateLimit) time.Duration { return l.Per / time.Duration(l.Limit) }

// tolerance is how far ahead of now a key's theoretical arrival time may be
// for one more call to start: the burst, less the call itself.
func tolerance(l outboundtype.RateLimit) time.Duration { return time.Duration(l.Burst-1) * Interval(l) }

// secondsOf turns a number of seconds the database computed into a
// duration; nil is zero.
func secondsOf(seconds *float64) time.Duration {
	if seconds == nil {
		return 0
	}
	return time.Duration(*seconds * float64(time.Second))
}

// snoozeFor is how long a message waiting d for its limit is snoozed: d, in
// hops of at most rateLimitHop.
func snoozeFor(d time.Duration) time.Duration { return min(d, rateLimitHop) }
