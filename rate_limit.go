package outbound

import (
	"fmt"
	"sort"
	"time"
	"unicode/utf8"
)

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

// maxRateLimitKeyBytes bounds the keys of Config.RateLimits, which are
// stored as the rate_limits table's primary key.
const maxRateLimitKeyBytes = 256

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

// interval is the time between two calls at the limit's steady rate.
func (l RateLimit) interval() time.Duration { return l.Per / time.Duration(l.Limit) }

// tolerance is how far ahead of now a key's theoretical arrival time may be
// for one more call to start: the burst, less the call itself.
func (l RateLimit) tolerance() time.Duration { return time.Duration(l.Burst-1) * l.interval() }

// validateRateLimits checks Config.RateLimits, whose bursts withDefaults has
// set, and names the first bad key in sorted order.
func validateRateLimits(limits map[string]RateLimit) error {
	keys := make([]string, 0, len(limits))
	for key := range limits {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		l := limits[key]
		field := fmt.Sprintf("Config.RateLimits[%q]", key)
		switch {
		case len(key) > maxRateLimitKeyBytes:
			return invalidArgument("Config.RateLimits", "a key must be at most %d bytes, got one of %d", maxRateLimitKeyBytes, len(key))
		case !utf8.ValidString(key) || containsNUL(key):
			return invalidArgument("Config.RateLimits", "a key must be valid UTF-8 without NUL bytes, got %q", key)
		case l.Limit < 1:
			return invalidArgument(field+".Limit", "must be at least 1, got %d", l.Limit)
		case l.Per < time.Millisecond:
			return invalidArgument(field+".Per", "must be at least 1ms, got %s", l.Per)
		case l.Burst < 1:
			return invalidArgument(field+".Burst", "must be at least 1 (0 means Limit), got %d", l.Burst)
		case l.interval() < time.Microsecond:
			// PostgreSQL's timestamps resolve microseconds.
			return invalidArgument(field, "must allow at most one call per microsecond, got %d per %s", l.Limit, l.Per)
		}
	}
	return nil
}

func containsNUL(s string) bool {
	for i := range len(s) {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

// withBursts returns a copy of limits with every zero Burst set to its
// Limit; nil when there are none.
func withBursts(limits map[string]RateLimit) map[string]RateLimit {
	if len(limits) == 0 {
		return nil
	}
	out := make(map[string]RateLimit, len(limits))
	for key, l := range limits {
		if l.Burst == 0 {
			l.Burst = l.Limit
		}
		out[key] = l
	}
	return out
}

// RateLimited tells the library that the provider refused a call for its
// rate (an HTTP 429, a throttling error), and asks that no call for the
// message's key start, in any process, for d. Unlike RetryAfter, it does
// not count as an attempt: the message is pending again, booked to be tried
// when the pause ends, and Config.MaxAttempts is not spent on waiting for
// the provider. The pause needs the key to have an entry in
// Config.RateLimits; a key without one holds back only its own message. A d
// of zero or less pauses for a second. errors.Is and errors.As see err
// through the result.
//
// A Notifier that returns RateLimited for every call keeps its messages
// pending until they are cancelled: back-pressure never discards.
func RateLimited(d time.Duration, err error) error {
	if d <= 0 {
		d = defaultRateLimitedPause
	}
	return &RateLimitedError{Delay: d, Err: err}
}

// RateLimitedError is the error RateLimited returns.
type RateLimitedError struct {
	// Delay is how long the key is paused.
	Delay time.Duration
	// Err is the Notifier's error.
	Err error
}

// Error implements error.
func (e *RateLimitedError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("rate limited, paused for %s", e.Delay)
	}
	return fmt.Sprintf("%s (rate limited, paused for %s)", e.Err.Error(), e.Delay)
}

// Unwrap returns the Notifier's error.
func (e *RateLimitedError) Unwrap() error { return e.Err }

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
