package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cairnloop/outbound/internal/dbutil"
	"github.com/cairnloop/outbound/outboundtype"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// PlaceTriggered stores the rate limit key of each of a trigger's new
// messages, msgs, whose key has a limit, inside the trigger's transaction
// tx, so that the database can order the key's waiters from the start. A
// bulk's message that is due is placed in its key's fair order; those
// within the key's burst are released a slot at once, which dispatchers
// count, and those beyond it park, their jobs asleep until a dispatcher
// releases them: River does not fetch a large bulk's jobs only for them to
// park. priority is their jobs' River priority.
//
// A message whose key has no limit here stores none, and the attempt
// computes it again; so does one whose RateLimitKey panics, and the attempt
// records the panic. With no limit among msgs, nothing is written.
func (e *Executor) PlaceTriggered(ctx context.Context, tx pgx.Tx, msgs []*outboundtype.Message, priority int) error {
	if len(e.RateLimits) == 0 || len(msgs) == 0 {
		return nil
	}
	var (
		args     placeArgs
		ordinals = map[string]int64{}
		panicked int
	)
	for _, msg := range msgs {
		key, ok := e.triggerKeyOf(msg)
		if !ok {
			panicked++
			continue
		}
		lim := e.limitOf(key)
		if !lim.limited {
			continue
		}
		// Scheduled for later, it is placed when it comes due, at its
		// first claim; due now, at the key's vtime plus its position.
		placed := msg.BulkEnvelopeID != uuid.Nil && !msg.ScheduledAt.After(msg.CreatedAt)
		var ordinal int64
		if placed {
			ordinal = ordinals[key]
			ordinals[key]++
		}
		args.add(msg.ID, lim, ordinal, placed, placed && ordinal >= int64(lim.limit.Burst))
	}
	if panicked > 0 {
		e.Logger.WarnContext(ctx, "outbound: Config.RateLimitKey panicked at trigger; those messages' keys are computed at their first attempt, which records the panic",
			slog.Int("messages", panicked))
	}
	if len(args.ids) == 0 {
		return nil
	}
	named := args.named()
	named["priority"] = priority
	named["slack_secs"] = parkSlack.Seconds()
	named["max_sleep_secs"] = maxParkSnooze.Seconds()
	rows, err := tx.Query(ctx, e.Queries.PlaceTriggered, named)
	if err != nil {
		return fmt.Errorf("store rate limit keys: %w", err)
	}
	turns := make(map[uuid.UUID]time.Time)
	var (
		id   pgtype.UUID
		turn time.Time
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &turn}, func() error {
		turns[id.Bytes] = turn
		return nil
	}); err != nil {
		return fmt.Errorf("store rate limit keys: %w", err)
	}
	// The caller's messages read as their rows do.
	for _, msg := range msgs {
		if turn, ok := turns[msg.ID]; ok {
			msg.RateLimitedUntil = turn
		}
	}
	return nil
}

// triggerKeyOf is RateLimitKey's key for a message being triggered; false
// when it panicked, which the message's first attempt records.
func (e *Executor) triggerKeyOf(msg *outboundtype.Message) (key string, ok bool) {
	if e.RateLimitKey == nil {
		return "", true
	}
	defer func() {
		if recover() != nil {
			key, ok = "", false
		}
	}()
	return e.RateLimitKey(msg), true
}

// placeArgs are PlaceTriggered's arrays, one row per message.
type placeArgs struct {
	ids                  []pgtype.UUID
	keys                 []string
	ordinals             []int64
	intervals, tolerance []float64
	placed, parks        []bool
}

func (a *placeArgs) add(id uuid.UUID, lim messageLimit, ordinal int64, placed, parks bool) {
	a.ids = append(a.ids, dbutil.PgUUID(id))
	a.keys = append(a.keys, lim.key)
	a.ordinals = append(a.ordinals, ordinal)
	a.intervals = append(a.intervals, Interval(lim.limit).Seconds())
	a.tolerance = append(a.tolerance, tolerance(lim.limit).Seconds())
	a.placed = append(a.placed, placed)
	a.parks = append(a.parks, parks)
}

func (a *placeArgs) named() pgx.NamedArgs {
	return pgx.NamedArgs{
		"ids":            a.ids,
		"keys":           a.keys,
		"ordinals":       a.ordinals,
		"interval_secs":  a.intervals,
		"tolerance_secs": a.tolerance,
		"placed":         a.placed,
		"parks":          a.parks,
	}
}
