package outbound

import (
	"cmp"
	"context"

	"github.com/cairnloop/outbound/internal/delivery"
)

// publishFinal publishes an attempt's final outcome to subscribers, building
// its Event only when someone listens.
func (c *Client) publishFinal(ctx context.Context, f delivery.Final) {
	if c.subscriptions.listening() {
		c.subscriptions.publish(ctx, messageEvent(f.Message, f.Status, f.Reason, f.LastError))
	}
}

// Subscribe returns a channel that receives the final outcome of each message
// this Client records, of the given kinds, and a function that ends the
// subscription and closes the channel. It works as River's Client.Subscribe
// does, except that a mistake is an error rather than a panic: no kind, or
// one it does not know, is an error matching ErrInvalidArgument, and then
// nothing is subscribed. Subscribe before Start to miss no delivery's
// outcome. Stop does not end a subscription: cancels and Reconcile report
// outcomes without the worker, so a subscription lasts until its function is
// called.
//
// Events are best-effort. They never hold delivery up: each is sent without
// blocking, after its outcome is committed, into a buffer of
// [DefaultSubscribeChanSize]; one that finds the buffer full is dropped,
// counted in the outbound.subscription.dropped_events metric and logged. A
// process can also die between a commit and its event. Use events to react promptly: to
// alert on a discarded message, or to update an inbox when one is sent. A
// host that must see every outcome reads the messages themselves, which are
// the record: [Client.ListMessages] by Status, ConversationID or
// BulkEnvelopeID, or [Client.Message] by id, for instance on start-up and
// then periodically to catch up on what events missed.
//
// A Client reports the outcomes it records: those of the deliveries it works
// (under [Client.Start], or under a host's River client with
// [Client.ConfigureRiver]), of the [Client.CancelMessage] and
// [Client.CancelEnvelope] calls made on it, and of the [Client.Reconcile]
// runs it makes. Several processes each report their own. CancelMessageTx
// and CancelEnvelopeTx report nothing, since the library cannot see whether
// the caller commits; the caller knows.
func (c *Client) Subscribe(kinds ...EventKind) (<-chan *Event, func(), error) {
	return c.subscribe("kinds", &SubscribeConfig{Kinds: kinds})
}

// SubscribeConfig is Subscribe with a configurable buffer; see Subscribe.
// A nil config, like no kind, is an error.
func (c *Client) SubscribeConfig(config *SubscribeConfig) (<-chan *Event, func(), error) {
	if config == nil {
		return nil, nil, invalidArgument("config", "must not be nil")
	}
	return c.subscribe("SubscribeConfig.Kinds", config)
}

// subscribe checks a subscription's config, then adds it. kindsField names
// the kinds in an error, as the caller gave them.
func (c *Client) subscribe(kindsField string, config *SubscribeConfig) (<-chan *Event, func(), error) {
	if len(config.Kinds) == 0 {
		return nil, nil, invalidArgument(kindsField, "must name at least one EventKind")
	}
	if config.ChanSize < 0 {
		return nil, nil, invalidArgument("SubscribeConfig.ChanSize", "must not be negative (0 means the default, %d), got %d", DefaultSubscribeChanSize, config.ChanSize)
	}
	var kinds uint8
	for _, kind := range config.Kinds {
		bit := kindBit(kind)
		if bit == 0 {
			return nil, nil, invalidArgument(kindsField, "holds %q, which is not an EventKind: want %s, %s, %s or %s",
				kind, EventKindMessageSent, EventKindMessageDiscarded, EventKindMessageCancelled, EventKindMessageUnconfirmed)
		}
		kinds |= bit
	}
	sub := &subscription{ch: make(chan *Event, cmp.Or(config.ChanSize, DefaultSubscribeChanSize)), kinds: kinds}
	return sub.ch, c.subscriptions.add(sub), nil
}
