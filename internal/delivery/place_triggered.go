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
// bulk's message that is due is placed in its key's fair order; as many as
// the key has slots free are released at once (none while a message of
// their priority or a more urgent one waits), which dispatchers count, and
// the rest park, their jobs asleep until a dispatcher releases them: River
// does not fetch a large bulk's jobs only for them to park. priority is
// their jobs' River priority.
//
// A message whose key has no limit here stores none, and the attempt
// computes it again; so does one whose RateLimitKey panics, and the attempt
// records the panic. With no limit among msgs, nothing is written.
func (e *Executor) PlaceTriggered(ctx context.Context, tx pgx.Tx, msgs []*outboundtype.Message, priority int) error {
	if len(e.RateLimits) == 0 || len(msgs) == 0 {
		return nil
	}
	var (
		args placeArgs
		// The positions of the call's messages by key: of those due, and
		// of a bulk's scheduled for later.
		due, later = map[string]int64{}, map[string]int64{}
		panicked   int
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
		// A bulk's message due now is placed at the key's vtime plus its
		// position; one scheduled for later, when it comes due, at its
		// first claim. One triggered by itself takes its place at its
		// first claim, in the share of all such messages.
		var ordinal int64
		placed := false
		switch {
		case msg.BulkEnvelopeID == uuid.Nil:
		case !msg.ScheduledAt.After(msg.CreatedAt):
			placed, ordinal = true, due[key]
			due[key]++
		default:
			ordinal = later[key]
			later[key]++
		}
		args.add(msg.ID, lim, ordinal, placed)
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
	ordinals, bursts     []int64
	intervals, tolerance []float64
	placed               []bool
}

func (a *placeArgs) add(id uuid.UUID, lim messageLimit, ordinal int64, placed bool) {
	a.ids = append(a.ids, dbutil.PgUUID(id))
	a.keys = append(a.keys, lim.key)
	a.ordinals = append(a.ordinals, ordinal)
	a.intervals = append(a.intervals, Interval(lim.limit).Seconds())
	a.tolerance = append(a.tolerance, tolerance(lim.limit).Seconds())
	a.bursts = append(a.bursts, int64(lim.limit.Burst))
	a.placed = append(a.placed, placed)
}

func (a *placeArgs) named() pgx.NamedArgs {
	return pgx.NamedArgs{
		"ids":            a.ids,
		"keys":           a.keys,
		"ordinals":       a.ordinals,
		"interval_secs":  a.intervals,
		"tolerance_secs": a.tolerance,
		"bursts":         a.bursts,
		"placed":         a.placed,
	}
}
