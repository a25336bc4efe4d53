package outbound

import (
	"slices"

	"github.com/cairnloop/outbound/internal/dbutil"
)

// The statuses of the schema's rules, which tests check against the
// migrations: see package dbutil.
var (
	liveStatuses     = dbutil.LiveStatuses
	awaitingStatuses = dbutil.AwaitingStatuses
)

// holdsDedupKey reports whether a message in status s keeps its dedup key
// (until the key is released, once the dedup window has passed).
func holdsDedupKey(s MessageStatus) bool {
	return slices.Contains(liveStatuses, s)
}

// awaitingResult reports whether a message in status s still awaits its
// delivery's result.
func awaitingResult(s MessageStatus) bool {
	return slices.Contains(awaitingStatuses, s)
}
