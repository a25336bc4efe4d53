package outboundtype

import "time"

// RateLimit limits how fast Notifier calls start for the messages of one key
// (Config.RateLimits), counted across every process that works the schema:
// in any window of length t, at most Burst + Limit × t/Per calls start. The
// limit's state lives in PostgreSQL, one row per key in the library's
// rate_limits table, and is read and moved with the database's clock.
//
// A key's slots go to its most urgent due message: by River priority, then
// by due time, with the messages of each bulk spread over the key at its
// rate, so that bulks (and messages triggered one by one, which count as one
// share) take turns. No slot is promised ahead: a message that finds none
// free waits, parked, and holds nothing; when a slot comes free a
// dispatcher (one per key in each process) releases the most urgent parked
// message to take it, by the database's clock. A cancelled, pruned or
// deleted message leaves nothing behind, and a dead process's fetched jobs
// hold no slot: they wait for River's rescue, as any job does.
//
// Each claim that takes a slot locks its key's row for one statement;
// claims that park do not lock it, so that a bulk's many claims never queue
// there. The rows keep only times, and every claim passes its own process's
// limits: when limits change between deploys each process applies its own
// until the old ones are gone, a limit loosened or tightened applies at
// once (as if the key had just used its burst but one slot), and a key removed
// from Config.RateLimits is unlimited in the processes without it.
type RateLimit struct {
	// Limit is how many calls may start per Per, at least 1.
	Limit int

	// Per is the period Limit counts over, at least a millisecond: 100 per
	// time.Second, 10,000 per 24*time.Hour.
	Per time.Duration

	// Burst is how many calls may start at once after a quiet spell, at
	// least 1. Defaults to Limit.
	Burst int

	// Also are further limits on the same key, all enforced together: a
	// call starts only when every one allows it. Each is a rolling window:
	// at most its Limit calls start in any window of its Per, exactly (the
	// key keeps the start of its last Limit calls, at most 1,000,000). 50 a
	// second and 10,000 a day is {Limit: 50, Per: time.Second, Also:
	// []RateLimit{{Limit: 10000, Per: 24 * time.Hour}}}. Their Burst and
	// their own Also must be zero.
	Also []RateLimit
}

// RateLimitState is a configured key's state, as Client.RateLimitStates
// reads it.
type RateLimitState struct {
	// Key is the key, and Limit its limits in this process's Config.
	Key   string
	Limit RateLimit
	// PausedUntil is when the key's pause ends, from a Notifier's
	// RateLimited; zero when it is not paused.
	PausedUntil time.Time
	// Waiting is how many of the key's messages wait, parked, for a slot.
	Waiting int64
	// Released is how many were released a slot and not yet claimed it.
	Released int64
}
