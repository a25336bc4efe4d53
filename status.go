package outbound

import (
	"slices"

	"github.com/cairnloop/outbound/internal/sqltext"
)

// liveStatuses hold a message's dedup key: sqltext.LiveStatuses, the rule of
// the dedup index, which a test checks the migrations against.
var liveStatuses = statusesOf(sqltext.LiveStatuses)

// awaitingStatuses are the statuses of messages whose delivery has not ended:
// sqltext.AwaitingStatuses, the rule of the awaiting_result column.
var awaitingStatuses = statusesOf(sqltext.AwaitingStatuses)

// undeliveredStatuses are the statuses of messages that no attempt holds and
// none has delivered: sqltext.UndeliveredStatuses.
var undeliveredStatuses = statusesOf(sqltext.UndeliveredStatuses)

func statusesOf(values []string) []MessageStatus {
	out := make([]MessageStatus, len(values))
	for i, v := range values {
		out[i] = MessageStatus(v)
	}
	return out
}

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
