package outbound

import (
	"context"
	"time"

	"github.com/cairnloop/outbound/internal/delivery"
)

// eventKindOf maps a final status to its event kind.
var eventKindOf = map[MessageStatus]EventKind{
	MessageStatusSent:        EventKindMessageSent,
	MessageStatusDiscarded:   EventKindMessageDiscarded,
	MessageStatusCancelled:   EventKindMessageCancelled,
	MessageStatusUnconfirmed: EventKindMessageUnconfirmed,
}

// messageEvent is the event of msg's final status, happening now.
func messageEvent(msg *Message, status MessageStatus, reason EventReason, lastError string) *Event {
	return &Event{
		Kind:           eventKindOf[status],
		Reason:         reason,
		MessageID:      msg.ID,
		ConversationID: msg.ConversationID,
		TemplateID:     msg.TemplateID,
		BulkEnvelopeID: msg.BulkEnvelopeID,
		Attempts:       msg.Attempts,
		LastError:      lastError,
		OccurredAt:     time.Now(),
	}
}

// publishFinal publishes an attempt's final outcome to subscribers, building
// its Event only when someone listens.
func (c *Client) publishFinal(ctx context.Context, f delivery.Final) {
	if c.subscriptions.listening() {
		c.subscriptions.publish(ctx, messageEvent(f.Message, f.Status, f.Reason, f.LastError))
	}
}
