package outbound

import (
	"slices"

	"github.com/cairnloop/outbound/internal/sqltext"
)

// MessageStatus is where a message is in its delivery lifecycle.
type MessageStatus string

// Message statuses. Pending, delivering and failed messages hold their dedup
// key until they are final; sent and unconfirmed ones hold it for
// Config.DedupWindow; discarded and cancelled ones free it.
const (
	// MessageStatusPending: waiting for its first attempt.
	MessageStatusPending MessageStatus = "pending"
	// MessageStatusDelivering: an attempt has claimed the message and is
	// calling the Notifier. It cannot be cancelled until the attempt ends.
	MessageStatusDelivering MessageStatus = "delivering"
	// MessageStatusSent: the Notifier returned nil.
	MessageStatusSent MessageStatus = "sent"
	// MessageStatusFailed: the last attempt failed; River tries again.
	MessageStatusFailed MessageStatus = "failed"
	// MessageStatusUnconfirmed: an attempt claimed the message and never
	// recorded a result (its worker died, or lost the database, on the last
	// attempt), and no attempt is left: the Notifier may have delivered it.
	// It is final and keeps its dedup key, as sent does; ask the provider,
	// by message id, whether it arrived. LastError says what happened.
	MessageStatusUnconfirmed MessageStatus = "unconfirmed"
	// MessageStatusDiscarded: every attempt failed, or the Notifier said
	// the failure is permanent.
	MessageStatusDiscarded MessageStatus = "discarded"
	// MessageStatusCancelled: cancelled before delivery; the Notifier will
	// not be called for it.
	MessageStatusCancelled MessageStatus = "cancelled"
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

// holdsDedupKey reports whether a message in this status keeps its dedup key
// (until the key is released, once the dedup window has passed).
func (s MessageStatus) holdsDedupKey() bool {
	return slices.Contains(liveStatuses, s)
}

// awaitingResult reports whether a message in this status still awaits its
// delivery's result.
func (s MessageStatus) awaitingResult() bool {
	return slices.Contains(awaitingStatuses, s)
}
