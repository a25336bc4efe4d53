package outbound

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cairnloop/outbound/internal/dbutil"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// messageLimit is a message's key and the limit it is under.
type messageLimit struct {
	key   string
	limit RateLimit
	// limited: the key has an entry in Config.RateLimits.
	limited bool
}

// limitOf returns the key and limit of a message.
func (c *Client) limitOf(msg *Message) messageLimit {
	key := ""
	if c.config.RateLimitKey != nil {
		key = c.config.RateLimitKey(msg)
	}
	l, ok := c.config.RateLimits[key]
	return messageLimit{key: key, limit: l, limited: ok}
}

// ensureRateLimitRow creates a key's rate_limits row once per process; a
// row deleted since is created again when a claim finds it missing.
func (c *Client) ensureRateLimitRow(ctx context.Context, key string) error {
	if _, ok := c.rateLimitRows.Load(key); ok {
		return nil
	}
	err := dbutil.RetryTransient(ctx, func(ctx context.Context) error {
		_, err := c.pool.Exec(ctx, c.queries.EnsureRateLimit, pgx.NamedArgs{"key": key})
		return err
	})
	if err != nil {
		return fmt.Errorf("create rate limit row: %w", err)
	}
	c.rateLimitRows.Store(key, struct{}{})
	return nil
}

// readWait reads a message and how long until its booking with its rate
// limit comes due: zero or less once due, or when it has none.
func (c *Client) readWait(ctx context.Context, id uuid.UUID) (*Message, time.Duration, error) {
	var (
		msg  *Message
		wait *float64
	)
	err := dbutil.RetryTransient(ctx, func(ctx context.Context) (err error) {
		msg, err = dbutil.ScanMessage(c.pool.QueryRow(ctx, c.queries.SelectMessageWait, pgx.NamedArgs{"id": dbutil.PgUUID(id)}), &wait)
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
func (c *Client) claimRated(ctx context.Context, id, claimID uuid.UUID, attempt int, lim messageLimit) (*Message, time.Duration, error) {
	var (
		msg  *Message
		wait *float64
	)
	args := pgx.NamedArgs{
		"id":             dbutil.PgUUID(id),
		"claim_id":       dbutil.PgUUID(claimID),
		"attempt":        attempt,
		"claim_secs":     claimLength(c.config).Seconds(),
		"key":            lim.key,
		"interval_secs":  interval(lim.limit).Seconds(),
		"tolerance_secs": tolerance(lim.limit).Seconds(),
	}
	// Retrying is safe: a retried claim whose first commit went through
	// finds its own claim id, and takes no second slot.
	err := dbutil.RetryTransient(ctx, func(ctx context.Context) (err error) {
		msg, err = dbutil.ScanMessage(c.pool.QueryRow(ctx, c.queries.ClaimMessageRated, args), &wait)
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
func (c *Client) recordRateLimited(ctx context.Context, id, claimID uuid.UUID, lim messageLimit, pause time.Duration, lastError string) (time.Duration, bool, error) {
	args := pgx.NamedArgs{
		"id":         dbutil.PgUUID(id),
		"claim_id":   dbutil.PgUUID(claimID),
		"key":        lim.key,
		"pause_secs": pause.Seconds(),
		"last_error": lastError,
	}
	var wait *float64
	err := dbutil.RetryTransient(ctx, func(ctx context.Context) error {
		return c.pool.QueryRow(ctx, c.queries.RecordRateLimited, args).Scan(&wait)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("record rate limited: %w", err)
	}
	return secondsOf(wait), true, nil
}
