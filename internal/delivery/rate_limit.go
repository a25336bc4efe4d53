package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
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

// limitOf returns the limit of a key.
func (e *Executor) limitOf(key string) messageLimit {
	l, ok := e.RateLimits[key]
	return messageLimit{key: key, limit: l, limited: ok}
}

// keyOf returns a message's key: the one stored at its first claim under a
// limit, else RateLimitKey's. A RateLimitKey that panics is an error, as a
// Notifier's panic is, bounded as last_error is.
func (e *Executor) keyOf(msg *outboundtype.Message, stored *string) (key string, err error) {
	if stored != nil {
		return *stored, nil
	}
	if e.RateLimitKey == nil {
		return "", nil
	}
	defer func() {
		if v := recover(); v != nil {
			text := boundedErrorText(fmt.Sprint(v))
			e.Logger.Error("outbound: Config.RateLimitKey panicked",
				slog.String("message_id", msg.ID.String()),
				slog.String("panic", text),
				slog.String("stack", string(debug.Stack())))
			err = errors.New("Config.RateLimitKey panicked: " + text)
		}
	}()
	return e.RateLimitKey(msg), nil
}

// ensureRateLimitRow creates a key's rows once per process; a row deleted
// since is created again when a claim finds it missing.
func (e *Executor) ensureRateLimitRow(ctx context.Context, lim messageLimit) error {
	if _, ok := e.rateLimitRows.Load(lim.key); ok {
		return nil
	}
	err := dbutil.RetryTransient(ctx, func(ctx context.Context) error {
		_, err := e.Pool.Exec(ctx, e.Queries.EnsureRateLimit, pgx.NamedArgs{"key": lim.key})
		return err
	})
	if err != nil {
		return fmt.Errorf("create rate limit row: %w", err)
	}
	e.rateLimitRows.Store(lim.key, struct{}{})
	return nil
}

// readKey reads a message and the key stored on it, if any.
func (e *Executor) readKey(ctx context.Context, id uuid.UUID) (*outboundtype.Message, *string, error) {
	var (
		msg *outboundtype.Message
		key *string
	)
	err := dbutil.RetryTransient(ctx, func(ctx context.Context) (err error) {
		msg, err = dbutil.ScanMessage(e.Pool.QueryRow(ctx, e.Queries.SelectMessageKey, pgx.NamedArgs{"id": dbutil.PgUUID(id)}), &key)
		return err
	})
	return msg, key, err
}

// parking is what a claim that parked its message found.
type parking struct {
	// turn is how long until the message's expected turn: an estimate, not
	// a promise.
	turn time.Duration
	// parkedFor is how long the message has waited, parked.
	parkedFor time.Duration
}

// claimLimited claims message id under claimID, counting River's attempt
// number attempt, if its key's limits let a call start now and no more
// urgent message of the key waits. When they do not, it parks the message
// and returns it and its parking. pgx.ErrNoRows: the message is missing or
// not claimable, or the key's row is missing.
func (e *Executor) claimLimited(ctx context.Context, id, claimID uuid.UUID, attempt, priority int, lim messageLimit) (*outboundtype.Message, *parking, error) {
	var (
		msg             *outboundtype.Message
		turn, parkedFor *float64
	)
	args := limitArgs(lim)
	args["id"] = dbutil.PgUUID(id)
	args["claim_id"] = dbutil.PgUUID(claimID)
	args["attempt"] = attempt
	args["claim_secs"] = e.ClaimLength.Seconds()
	args["priority"] = priority
	// Retrying is safe: a retried claim whose first commit went through
	// finds its own claim id, and takes no second slot.
	err := dbutil.RetryTransient(ctx, func(ctx context.Context) (err error) {
		msg, err = dbutil.ScanMessage(e.Pool.QueryRow(ctx, e.Queries.ClaimMessageLimited, args), &turn, &parkedFor)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if parkedFor == nil {
		return msg, nil, nil
	}
	return msg, &parking{turn: secondsOf(turn), parkedFor: secondsOf(parkedFor)}, nil
}

// recordRateLimited records an attempt whose Notifier returned RateLimited,
// if claimID still holds message id and no cancel was requested: the
// message is pending again, not counting the attempt, until the pause ends;
// under a limit, it parks, and its key's row takes the pause on for every
// process. It returns the wait until the pause ends, or false when nothing
// was recorded.
func (e *Executor) recordRateLimited(ctx context.Context, id, claimID uuid.UUID, priority int, lim messageLimit, pause time.Duration, lastError string) (time.Duration, bool, error) {
	args := pgx.NamedArgs{
		"id":         dbutil.PgUUID(id),
		"claim_id":   dbutil.PgUUID(claimID),
		"key":        lim.key,
		"priority":   priority,
		"pause_secs": pause.Seconds(),
		"last_error": lastError,
		"parks":      lim.limited,
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
	if lim.limited {
		e.Kick(lim.key)
	}
	return secondsOf(wait), true, nil
}

// limitArgs are the arguments that pass a key and its limits to a
// statement.
func limitArgs(lim messageLimit) pgx.NamedArgs {
	also := lim.limit.Also
	limits := make([]int64, len(also))
	pers := make([]float64, len(also))
	var keep int64
	for i, l := range also {
		limits[i], pers[i] = int64(l.Limit), l.Per.Seconds()
		keep = max(keep, int64(l.Limit))
	}
	return pgx.NamedArgs{
		"key":             lim.key,
		"interval_secs":   Interval(lim.limit).Seconds(),
		"tolerance_secs":  tolerance(lim.limit).Seconds(),
		"window_limits":   limits,
		"window_per_secs": pers,
		"keep":            keep,
	}
}

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

// parkSlack is how long after its expected turn a parked message's job
// wakes by itself, when no dispatcher has released it by then: the safety
// net for a key whose every process stopped dispatching it.
const parkSlack = 30 * time.Second

// maxParkSnooze bounds how long a parked message's job sleeps at once.
const maxParkSnooze = time.Hour

// parkSnooze is how long the job of a parked message sleeps: until after
// its expected turn, or, once it has waited past that, as long again as it
// has waited, so that the jobs of a long wait wake by themselves rarely.
// A dispatcher releases it sooner, by the database's clock.
func parkSnooze(p *parking) time.Duration {
	return min(max(p.turn, p.parkedFor, 0)+parkSlack, maxParkSnooze)
}
