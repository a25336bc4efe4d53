package outboundtype

import "time"

// RateLimit limits how fast Notifier calls start for the messages of one key
// (Config.RateLimits), counted across every process that works the schema:
// in any window of length t, at most Burst + Limit × t/Per calls start. The
// limit's state lives in PostgreSQL, one row per key in the library's
// rate_limits table, and is read and moved with the database's clock.
//
// Each claim under a limit locks its key's row for one statement, so the
// claims of one key take turns there when the database is slow; other keys
// do not wait for it. A process that dies after its claim took a slot loses
// the slot, which is never given twice; a message's booking lives in the
// database, so any process works it when it comes due. The row keeps only
// times, and every claim passes its own process's limit: when limits change
// between deploys, each process applies its own until the old ones are gone,
// bookings already made keep their times, and a key removed from
// Config.RateLimits is unlimited at once.
//
// A waiting message is tried at the first fetch after its slot comes, within
// Config.FetchPollInterval: with a Burst smaller than Limit ×
// FetchPollInterval / Per, lower FetchPollInterval, or the limit's full rate
// is not reached.
type RateLimit struct {
	// Limit is how many calls may start per Per, at least 1.
	Limit int

	// Per is the period Limit counts over, at least a millisecond: 100 per
	// time.Second, 10,000 per 24*time.Hour.
	Per time.Duration

	// Burst is how many calls may start at once after a quiet spell, at
	// least 1. Defaults to Limit.
	Burst int
}
