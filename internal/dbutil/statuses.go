package dbutil

import (
	"github.com/cairnloop/outbound/internal/sqltext"
	"github.com/cairnloop/outbound/outboundtype"
)

// LiveStatuses hold a message's dedup key: sqltext.LiveStatuses, the rule of
// the dedup index, which a test checks the migrations against.
var LiveStatuses = statusesOf(sqltext.LiveStatuses)

// AwaitingStatuses are the statuses of messages whose delivery has not ended:
// sqltext.AwaitingStatuses, the rule of the awaiting_result column.
var AwaitingStatuses = statusesOf(sqltext.AwaitingStatuses)

// UndeliveredStatuses are the statuses of messages that no attempt holds and
// none has delivered: sqltext.UndeliveredStatuses.
var UndeliveredStatuses = statusesOf(sqltext.UndeliveredStatuses)

// statusesOf turns a rule's status names into MessageStatus values.
func statusesOf(values []string) []outboundtype.MessageStatus {
	out := make([]outboundtype.MessageStatus, len(values))
	for i, v := range values {
		out[i] = outboundtype.MessageStatus(v)
	}
	return out
}
