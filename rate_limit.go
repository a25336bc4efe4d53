package outbound

import (
	"fmt"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/cairnloop/outbound/internal/delivery"
)

// maxRateLimitKeyBytes bounds the keys of Config.RateLimits, which are
// stored as the rate_limits table's primary key.
const maxRateLimitKeyBytes = 256

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
		case delivery.Interval(l) < time.Microsecond:
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
