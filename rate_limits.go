package outbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/cairnloop/outbound/outboundtype"
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
