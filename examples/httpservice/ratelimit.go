package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cairnloop/outbound"
)

// parseRateLimit reads the delivery rate limit from OUTBOUND_RATE_LIMIT, as
// LIMIT/PER or LIMIT/PER/BURST: "100/1s" is 100 Notifier calls a second
// with a burst of 100, "10/1s/5" 10 a second with a burst of 5, and
// "50000/24h" 50,000 a day. Empty means no limit.
func parseRateLimit(s string) (map[string]outbound.RateLimit, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return nil, fmt.Errorf("OUTBOUND_RATE_LIMIT: want LIMIT/PER or LIMIT/PER/BURST, such as 100/1s, got %q", s)
	}
	limit, err := strconv.Atoi(parts[0])
	if err != nil || limit < 1 {
		return nil, fmt.Errorf("OUTBOUND_RATE_LIMIT: LIMIT must be a whole number of at least 1, got %q", parts[0])
	}
	per, err := time.ParseDuration(parts[1])
	if err != nil || per <= 0 {
		return nil, fmt.Errorf("OUTBOUND_RATE_LIMIT: PER must be a duration such as 1s or 24h, got %q", parts[1])
	}
	l := outbound.RateLimit{Limit: limit, Per: per}
	if len(parts) == 3 {
		if l.Burst, err = strconv.Atoi(parts[2]); err != nil || l.Burst < 1 {
			return nil, fmt.Errorf("OUTBOUND_RATE_LIMIT: BURST must be a whole number of at least 1, got %q", parts[2])
		}
	}
	// One key for every message: the example has one provider, its log.
	return map[string]outbound.RateLimit{"": l}, nil
}
