package outbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/cairnloop/outbound/internal/delivery"
	"github.com/cairnloop/outbound/outboundtype"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// RateLimitState is a configured key's state: see outboundtype.RateLimitState.
type RateLimitState = outboundtype.RateLimitState

// LiftRateLimitPause ends the pause that a Notifier's RateLimited put on a
// key, in every process, and releases its waiting messages at the key's
// rate from now. It reports whether the key was paused. A key that is not
// in Config.RateLimits is an *InvalidArgumentError.
func (c *Client) LiftRateLimitPause(ctx context.Context, key string) (bool, error) {
	if _, ok := c.config.RateLimits[key]; !ok {
		return false, invalidArgument("key", "%q is not a key of Config.RateLimits", key)
	}
	var ended time.Time
	err := c.pool.QueryRow(ctx, c.queries.LiftPause, pgx.NamedArgs{"key": key}).Scan(&ended)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("outbound: lift rate limit pause: %w", err)
	}
	c.config.Logger.InfoContext(ctx, "outbound: rate limit pause lifted", slog.String("key", key), slog.Time("was_until", ended))
	c.delivery.Kick(key)
	return true, nil
}

// RateLimitStates reads the state of every key in Config.RateLimits, by
// key.
func (c *Client) RateLimitStates(ctx context.Context) ([]RateLimitState, error) {
	keys := make([]string, 0, len(c.config.RateLimits))
	for key := range c.config.RateLimits {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	rows, err := c.pool.Query(ctx, c.queries.SelectKeyStates, pgx.NamedArgs{"keys": keys})
	if err != nil {
		return nil, fmt.Errorf("outbound: read rate limits: %w", err)
	}
	states, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (RateLimitState, error) {
		var (
			s      RateLimitState
			paused *time.Time
		)
		if err := row.Scan(&s.Key, &paused, &s.Waiting, &s.Released); err != nil {
			return s, err
		}
		if paused != nil {
			s.PausedUntil = *paused
		}
		s.Limit = c.config.RateLimits[s.Key]
		return s, nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbound: read rate limits: %w", err)
	}
	return states, nil
}

// EnvelopeETA is how long an envelope's undelivered messages take at the
// rate of their keys' limits, as EnvelopeETA reads it.
type EnvelopeETA struct {
	// Waiting is how many of its undelivered messages have a limited key
	// (each is given its key at its first attempt).
	Waiting int64
	// Remaining is how long they take at their keys' full rates, from now
	// or the end of a key's pause: an estimate, which sharing a key with
	// other envelopes or more urgent messages lengthens.
	Remaining time.Duration
}

// EnvelopeETA estimates how long an envelope's messages held by rate limits
// take to go. An envelope none of whose undelivered messages has a limited
// key has a zero EnvelopeETA.
func (c *Client) EnvelopeETA(ctx context.Context, id uuid.UUID) (EnvelopeETA, error) {
	var eta EnvelopeETA
	if len(c.config.RateLimits) == 0 {
		return eta, nil
	}
	states, err := c.RateLimitStates(ctx)
	if err != nil {
		return eta, err
	}
	paused := make(map[string]time.Time, len(states))
	keys := make([]string, 0, len(states))
	for _, s := range states {
		paused[s.Key] = s.PausedUntil
		keys = append(keys, s.Key)
	}
	rows, err := c.pool.Query(ctx, c.queries.CountEnvelopeWaitingByKey, pgx.NamedArgs{"id": id, "keys": keys})
	if err != nil {
		return eta, fmt.Errorf("outbound: envelope eta: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			key string
			n   int64
		)
		if err := rows.Scan(&key, &n); err != nil {
			return eta, fmt.Errorf("outbound: envelope eta: %w", err)
		}
		eta.Waiting += n
		limit := c.config.RateLimits[key]
		take := time.Duration(n) * delivery.Interval(limit)
		for _, w := range limit.Also {
			take = max(take, time.Duration(n/int64(w.Limit))*w.Per)
		}
		if until := time.Until(paused[key]); until > 0 {
			take += until
		}
		eta.Remaining = max(eta.Remaining, take)
	}
	if err := rows.Err(); err != nil {
		return eta, fmt.Errorf("outbound: envelope eta: %w", err)
	}
	return eta, nil
}
